"""plugdeck-echo: an example of every kind of plugdeck extension in one small package.

Each part lives in its own module, and plugdeck imports a module only when it needs that part:
`plugdeck ask` never imports the command, and `--model rules` never imports the echo model. Keep
this file empty, so that importing one part does not import the others.
"""
