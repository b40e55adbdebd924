"""plugdeck-echo: an example of every kind of plugdeck extension in one small package.

Each part lives in its own module, and plugdeck imports a module only when it needs that part:
`plugdeck ask` never imports the command, and `--model rules` never imports the echo model.
"""

from plugdeck import Plugin, tool


@tool(capabilities=("text-reversal",))
def reverse(text: str) -> str:
    """Reverse a piece of text, character by character.

    Args:
        text: The text to reverse.
    """
    return text[::-1]


plugin = Plugin(name="echo", version="0.1.0", description="Reverses text.", tools=[reverse])
