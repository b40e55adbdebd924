"""The rules: which tools, which arguments, what needs a person's OK, budgets and answer checks.

Checked in code before every tool call and before the final answer; the model cannot talk its
way around them.
"""

from .engine import Decision, decide
from .load import Policy, PolicyError, load_policy, policy_from

__all__ = ["Decision", "Policy", "PolicyError", "decide", "load_policy", "policy_from"]
