"""`plugdeck serve`: the HTTP server. An OpenAI-compatible API (`/v1`), a REST API for runs, plugins,
confirmations and knowledge bases (`/api`), Server-Sent Events for live runs, and the web page.

Imported only when the server is used: FastAPI and uvicorn come with the `server` extra.
"""
