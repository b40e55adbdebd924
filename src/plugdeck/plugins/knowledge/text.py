"""Plain-text helpers shared by chunking, search and the grounding check: sentence spans, content
words, numbers, and removing characters that hide text from people (but not from models).

Standard library only, so the rules model can use them without loading numpy or torch.
"""

from __future__ import annotations

import re

from ...words import STOPWORDS, stem, words  # shared with tool selection; re-exported here

# Tag characters (U+E0000-E007F), zero-width and bidi controls: invisible to a reader, visible to a
# model, the classic carrier of hidden instructions ("ASCII smuggling").
_INVISIBLE = re.compile("[\U000e0000-\U000e007f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """The text without invisible control characters, with newlines normalised to \\n."""
    return _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


# ---- sentences ------------------------------------------------------------------------------------

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "fig", "approx", "incl", "dept", "cf", "al",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}
_END = re.compile(r"[.!?]+[\"'”’)]*(?:\[[^\]\n]{1,40}\])*(?=\s)")
_CITATION_AFTER = re.compile(r"\s*(?:\[[^\]\n]{1,40}\]\s*)+")
_BLOCK_START = re.compile(r"[ \t]*(?:[-*+•]\s|\d{1,3}[.)]\s|\||#|>)")
_LAST_WORD = re.compile(r"(\w[\w.]*)$")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences in text[start:end], whitespace trimmed.

    A sentence ends at . ! or ? followed by space (not after a known abbreviation or an initial),
    at a blank line, and at a line break before a list item, table row, heading or quote, or after
    a line that ends in punctuation. Citation markers right after the full stop ("... 25 days. [1]")
    stay with their sentence. Hard-wrapped lines within a sentence do not split it.
    """
    end = len(text) if end is None else end
    cuts: list[int] = []
    for match in _END.finditer(text, start, end):
        word = _LAST_WORD.search(text, max(start, match.start() - 12), match.start())
        if word and text[match.start()] == "." and _is_abbreviation(word.group(1)):
            continue
        after = _CITATION_AFTER.match(text, match.end(), end)
        cuts.append(after.end() if after and "[" in after.group() else match.end())
    position = text.find("\n", start, end)
    while position != -1:
        line = text[max(start, text.rfind("\n", start, position) + 1) : position].strip()
        if (not line or text.startswith("\n", position + 1) or line.endswith((".", "!", "?", ":", ";", "]"))
                or line.startswith(("#", "|", "-", "*", ">")) or _BLOCK_START.match(text, position + 1, end)):
            cuts.append(position)
        position = text.find("\n", position + 1, end)
    spans = []
    previous = start
    for cut in sorted(set(cuts)) + [end]:
        if cut <= previous:
            continue
        span = _trim(text, previous, cut)
        if span:
            spans.append(span)
        previous = cut
    return spans


def sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def _is_abbreviation(word: str) -> bool:
    lowered = word.lower().rstrip(".")
    return lowered in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


# ---- words and numbers ----------------------------------------------------------------------------

NEGATIONS = frozenset("no not never none nobody nothing neither nor cannot without n't isn aren wasn weren don doesn didn won can't".split())

_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])\d+(?:\.\d+)?")
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
_NUMBER_WORDS = re.compile(
    r"\b(" + "|".join(sorted(_TENS, key=len, reverse=True)) + r")(?:[-\s](" + "|".join(list(_UNITS)[1:10]) + r"))?\b"
    r"|\b(" + "|".join(sorted(_UNITS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_NUMBER_WORD_SET = frozenset(_UNITS) | frozenset(_TENS)
_MARKERS = re.compile(r"\[[^\]\n]{1,40}\]")


def content_terms(text: str) -> set[str]:
    """Stems of the words that carry meaning (no stopwords, no citation markers, no bare numbers)."""
    text = _MARKERS.sub(" ", text)
    return {stem(w) for w in words(text)
            if w not in STOPWORDS and not w.isdigit() and len(w) > 1 and w not in _NUMBER_WORD_SET}


def numbers(text: str) -> set[str]:
    """Numbers written in digits or words, normalised ('2,340' -> '2340', 'twenty-five' -> '25')."""
    text = _MARKERS.sub(" ", text)
    found = {n.replace(",", "").rstrip("0").rstrip(".") if "." in n else n.replace(",", "")
             for n in _NUMBER.findall(text)}
    for match in _NUMBER_WORDS.finditer(text):
        tens, unit, single = match.groups()
        if single:
            found.add(str(_UNITS[single.lower()]))
        else:
            found.add(str(_TENS[tens.lower()] + (_UNITS[unit.lower()] if unit else 0)))
    return found


def negated(text: str) -> bool:
    lowered = text.lower().replace("’", "'")
    return any(w in NEGATIONS for w in words(lowered)) or "n't" in lowered


# ---- markup --------------------------------------------------------------------------------------

_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_FENCE = re.compile(r"^\s*(?:```|~~~).*$", re.MULTILINE)
_LINE_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+•]\s+|\d{1,3}[.)]\s+)")


def plain(text: str) -> str:
    """A passage's text for people: markdown links, emphasis and list markers removed, one line."""
    text = _FENCE.sub("", _MD_LINK.sub(r"\1", text))
    text = _MD_EMPHASIS.sub(r"\2", text)
    text = "\n".join(_LINE_MARKER.sub("", line) for line in text.splitlines())
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    return text[: cut if cut > limit // 2 else limit - 1] + "…"
