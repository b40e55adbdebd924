"""A plugin: one tool, echo.reverse, that the rules skill in skill.py calls."""

from plugdeck import Plugin, tool


@tool(capabilities=("text-reversal",))
def reverse(text: str) -> str:
    """Reverse a piece of text, character by character.

    Args:
        text: The text to reverse.
    """
    return text[::-1]


plugin = Plugin(name="echo", version="0.1.0", description="Reverses text.", tools=[reverse])
