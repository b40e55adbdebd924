"""A command: `plugdeck echo say TEXT` and `plugdeck echo reverse TEXT`."""

import typer

app = typer.Typer(help="Say things back (from the plugdeck-echo package).", no_args_is_help=True)


@app.command()
def say(text: str, times: int = typer.Option(1, help="How many times.")) -> None:
    """Print TEXT back."""
    for _ in range(times):
        print(text)


@app.command()
def reverse(text: str) -> None:
    """Print TEXT reversed."""
    print(text[::-1])
