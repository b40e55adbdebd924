"""agentbench: plugdeck's planners against LangGraph's prebuilt ReAct agent, on one deterministic mock.

Run from the repository root: `python -m bench.agentbench` (see `__main__.py` for the options).
"""
