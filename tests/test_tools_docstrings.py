"""@tool reads parameter descriptions from docstrings in each common style (docstring-parser):
the description keeps only the prose, and every documented parameter gets its text."""

from __future__ import annotations

from plugdeck.tools import parse_docstring, tool


def described(fn) -> tuple[str, dict[str, str | None]]:
    made = tool(fn)
    return made.description, {name: prop.get("description") for name, prop in made.parameters["properties"].items()}


def test_numpy_with_two_names_on_one_line_documents_both():
    def distance(x: float, y: float, scale: int = 1) -> float:
        """Distance of a point from the origin.

        Parameters
        ----------
        x, y : float
            The point's coordinates.
        scale : int, optional
            Multiplies the result.

        Returns
        -------
        float
        """
        return (x * x + y * y) ** 0.5 * scale

    description, params = described(distance)
    assert description == "Distance of a point from the origin."
    assert params == {"x": "The point's coordinates.", "y": "The point's coordinates.", "scale": "Multiplies the result."}


def test_epydoc_param_text_goes_to_the_parameter_not_the_description():
    def send(to: str, body: str) -> str:
        """Send a message.

        @param to: who gets it
        @param body: the text,
            on two lines
        @return: the message id
        """
        return to

    description, params = described(send)
    assert description == "Send a message."
    assert params == {"to": "who gets it", "body": "the text, on two lines"}


def test_google_with_types_and_continuation_lines():
    def forecast(city: str, days: int = 3) -> str:
        """Weather forecast for a city.

        Args:
            city (str): The city's
                name.
            days: How many days ahead.

        Returns:
            The forecast as text.
        """
        return city

    description, params = described(forecast)
    assert description == "Weather forecast for a city."
    assert params == {"city": "The city's name.", "days": "How many days ahead."}


def test_rest_with_inline_type_and_type_lines():
    def convert(amount: float, unit: str) -> float:
        """Convert an amount.

        :param amount: how much
        :type amount: float
        :param str unit: the unit to convert to
        :returns: the converted amount
        """
        return amount

    description, params = described(convert)
    assert description == "Convert an amount."
    assert params == {"amount": "how much", "unit": "the unit to convert to"}


def test_plain_prose_has_no_parameters_and_keeps_every_sentence():
    assert parse_docstring("Just a summary.\n\nWith a second paragraph.") == (
        "Just a summary. With a second paragraph.", {})


def test_undocumented_parameters_have_no_description():
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Args:
            a: The first.
        """
        return a + b

    _, params = described(add)
    assert params == {"a": "The first.", "b": None}
