"""Where the shared real-world fixtures are: ../shared/fixtures beside the checkout (CI has it there)."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
