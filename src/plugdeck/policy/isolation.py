"""Tool-output isolation (R03): output is data, so nothing in it may read as chat-template syntax.

Always on, for every tool result and error before the model reads it (plugdeck.agent.executor):

- Invisible characters are removed and counted: zero-width and other format characters (Unicode
  category Cf: ZWSP, ZWJ, word joiner, BOM, soft hyphen...), bidirectional controls (LRE...PDF,
  LRI...PDI, RLM/LRM), the Unicode tag block U+E0000-E007F ("ASCII smuggling"), variation selectors,
  and C0/C1 control characters other than tab and newline.
- Chat-template tokens and role markers are escaped with a visible backslash, so that no tokenizer
  reads them as special tokens and no model takes them for a turn boundary, while a person reading
  the output still sees what was there: `<|im_start|>` becomes `<\\|im_start\\|>`, `[INST]` becomes
  `[\\INST]`, `</tool_call>` becomes `<\\/tool_call>`, `<<SYS>>` becomes `<\\<SYS>>`, and "Assistant:"
  at the start of a line becomes "\\Assistant:".
"""

from __future__ import annotations

import re
from typing import Any

# <|im_start|>, <|eot_id|>, <|start_header_id|>, <|python_tag|>, <|endoftext|>, DeepSeek's <｜...｜>
_PIPE_TOKEN = re.compile(r"<([|｜])|([|｜])>")
_BRACKET_TOKEN = re.compile(
    r"\[(/?)(INST|SYS|TOOL_CALLS|TOOL_RESULTS|AVAILABLE_TOOLS|SYSTEM_PROMPT|TOOL_CONTENT|THINK|CALL_ID|ARGS)\]",
    re.I)
_ANGLE_TOKEN = re.compile(
    r"<(/?)(s|bos|eos|pad|unk|tool_call|tool_calls|tool_response|tool_result|tools|function_calls?|function|invoke|"
    r"parameter|start_of_turn|end_of_turn|im_start|im_end|think|system|user|assistant|ipython|"
    r"antml:[a-z_]+)(?=[\s>=])", re.I)
_DOUBLE_ANGLE = re.compile(r"<<(/?)(SYS)>>", re.I)
_ROLE_LINE = re.compile(r"(?:^|(?<=\r))([ \t>]*)((?:#+[ \t]*)?(?:Human|Assistant|System|User|Developer|Tool|Instruction|"
                        r"Response|AI|H|A)[ \t]*:)", re.I | re.M)


# Invisible characters, as ranges (first, last): Unicode's format characters (category Cf) and line and
# paragraph separators, C0/C1 controls other than tab, newline and carriage return, the Hangul fillers,
# Mongolian variation selectors, variation selectors (U+FE00-FE0F) and the whole tag and variation-selector
# supplement planes U+E0000-E01EF, unassigned gaps included (nothing there is ever visible).
_INVISIBLE_RANGES = [
    (0x0, 0x8), (0xB, 0xC), (0xE, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C),
    (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x115F, 0x1160), (0x180B, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE01EF),
]
_INVISIBLE = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _INVISIBLE_RANGES) + "]")
_REPLACEMENTS = (
    (_PIPE_TOKEN, lambda m: f"<\\{m.group(1)}" if m.group(1) else f"\\{m.group(2)}>"),
    (_BRACKET_TOKEN, r"[\\\1\2]"),
    (_ANGLE_TOKEN, r"<\\\1\2"),
    (_DOUBLE_ANGLE, r"<\\<\1\2>>"),
    (_ROLE_LINE, r"\1\\\2"),
)
# A character every match above needs (an invisible one, `<`, `>`, `[`, or the colon of a role line):
# most tool output has none, and is then left as it is after one cheap scan.
_TRIGGERS = re.compile("[<>\\[:" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in _INVISIBLE_RANGES) + "]")


def neutralise(text: str) -> tuple[str, int, int]:
    """(text, invisible characters removed, tokens escaped)."""
    if not _TRIGGERS.search(text):
        return text, 0, 0
    text, invisible = _INVISIBLE.subn("", text)
    tokens = 0
    for pattern, replacement in _REPLACEMENTS:
        text, count = pattern.subn(replacement, text)
        tokens += count
    return text, invisible, tokens


def neutralise_value(value: Any) -> tuple[Any, dict[str, int]]:
    """A tool result (any JSON-like value) with every string neutralised, keys too; and the counts."""
    counts = {"invisible": 0, "tokens": 0}

    def clean(item: Any) -> Any:
        if item is None or isinstance(item, (bool, int, float)):
            return item
        if not isinstance(item, (str, dict, list, tuple)):
            item = str(item)  # as json.dumps(default=str) would show it
        if isinstance(item, str):
            text, invisible, tokens = neutralise(item)
            counts["invisible"] += invisible
            counts["tokens"] += tokens
            return text
        if isinstance(item, dict):
            return {clean(str(k)): clean(v) for k, v in item.items()}
        return [clean(v) for v in item]

    return clean(value), counts
