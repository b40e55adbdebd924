"""Answer checks: the types live in plugdeck.checks (below the agent, so policy and plugins can
implement them); this name is kept for code that imports them from here."""

from ..checks import AnswerCheck, CheckedRun, CheckResult

__all__ = ["AnswerCheck", "CheckedRun", "CheckResult"]
