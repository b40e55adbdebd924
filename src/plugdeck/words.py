"""English words for keyword matching: tokens, stopwords and a light stemmer.

Shared by tool selection (the agent) and the knowledge search, so it lives below both. Standard
library only.
"""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "stem", "words"]

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been before being
    below between both but by can could did didn do does doesn doing don down during each either else ever
    every few for from further get gets got had has have having he her here hers herself him himself his how
    i if in into is isn it its itself just let may me might more most must my myself neither nor of off on
    once one only or other ought our ours ourselves out over own per please same shall she should so some
    such than that the their theirs them themselves then there these they this those through to too under
    until up upon us very was wasn we were weren what when where whether which while who whom whose why
    will with within without would you your yours yourself yourselves tell know say says said want many much""".split()
)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def stem(word: str) -> str:
    """A light suffix stripper, enough to match 'employees'/'employee', 'days'/'day', 'receives'/'received'."""
    if len(word) > 3 and not word.endswith(("ss", "us", "is")):
        if word.endswith("ies"):
            word = word[:-3] + "y"
        elif word.endswith(("sses", "xes", "zes", "ches", "shes")):
            word = word[:-2]
        elif word.endswith("ing") and len(word) > 5:
            word = word[:-3]
        elif word.endswith("ed") and len(word) > 4:
            word = word[:-2]
        elif word.endswith("s"):
            word = word[:-1]
    return word[:-1] if len(word) > 3 and word.endswith("e") else word
