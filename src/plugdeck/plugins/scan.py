"""A local scanner for what a plugin tells the model about its tools (R13), run when a person adds
a plugin and again when they approve a changed tool.

Tool names, descriptions and every text inside a parameter schema reach the model as if they were
instructions, so a poisoned description is a prompt injection that runs before any tool does. The
scanner looks for the marks such text leaves, offline and deterministically (regular expressions
and Unicode data, no model, no network):

  high    invisible or direction-changing characters (zero-width, bidi controls, the tag block,
          variation-selector smuggling); Latin look-alike letters from other scripts inside a word;
          `<IMPORTANT>` / `<SYSTEM>`-style tags and chat-template tokens; instructions aimed at the
          model ("ignore previous instructions", "before using this tool", "do not tell the user",
          "always BCC"); paths to secrets (~/.ssh, id_rsa, .env, mcp.json); another plugin's tool
          names (shadowing, R12); base64 that decodes to text
  medium  text that addresses the model with standing orders ("you must always"), long opaque
          base64, descriptions far longer than a tool needs, rarely legitimate format characters
  low     URLs (a description that names a web address may be steering the model there)

A high finding blocks approval unless the person overrides it after seeing it in full; the CLI
shows every finding with invisible characters spelled out (`<U+200B>`).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

HIGH, MEDIUM, LOW = "high", "medium", "low"
SEVERITY_ORDER = {HIGH: 0, MEDIUM: 1, LOW: 2}
LONG_TEXT = 2000  # characters in one description: more than any tool needs (OpenAPI clips to 1024)
LONG_TOOL = 6000  # characters of all the text of one tool together
SCHEMA_TEXT_KEYS = ("description", "title", "default", "examples", "example", "const", "enum", "pattern")


@dataclass(frozen=True)
class Finding:
    tool: str  # the tool (or plugin) the text belongs to
    where: str  # "description", "parameters.text.description", "name", ...
    severity: str
    rule: str  # hidden-characters, look-alike-letters, instruction-tag, model-directed, secret-path, ...
    detail: str  # what was found, with invisible characters spelled out

    def __str__(self) -> str:
        return f"{self.severity}: {self.tool} ({self.where}): {self.detail}"


# ---- characters ---------------------------------------------------------------------------------

_INVISIBLE = {  # code point ranges -> what they are
    (0x200B, 0x200D): "zero-width character",
    (0x2060, 0x2064): "invisible word joiner or operator",
    (0xFEFF, 0xFEFF): "zero-width no-break space",
    (0x180E, 0x180E): "Mongolian vowel separator (invisible)",
    (0x200E, 0x200F): "bidi mark",
    (0x061C, 0x061C): "Arabic letter mark (bidi)",
    (0x202A, 0x202E): "bidi embedding or override",
    (0x2066, 0x2069): "bidi isolate",
    (0xE0000, 0xE007F): "Unicode tag character (invisible text)",
    (0xE0100, 0xE01EF): "variation selector supplement (can smuggle hidden bytes)",
}
_RARE_FORMAT = {0x00AD: "soft hyphen", 0x034F: "combining grapheme joiner", 0x115F: "Hangul filler",
                0x1160: "Hangul filler", 0x3164: "Hangul filler", 0xFFA0: "Hangul filler"}
# Letters of other scripts that look like Latin ones: mixed into a Latin word they impersonate it.
_LOOK_ALIKES = set("аеорсухіјѕԁԛԝһӏвкмнтАВЕКМНОРСТХЅІЈԌԚԜαοριτυνΑΒΕΖΗΙΚΜΝΟΡΤΥΧ")


def spell_out(text: str) -> str:
    """Text as a person can review it: invisible and format characters become `<U+XXXX>`."""
    return "".join(
        f"<U+{ord(ch):04X}>" if _invisible(ch) or ord(ch) in _RARE_FORMAT or unicodedata.category(ch) in ("Cf", "Co")
        else ch
        for ch in text
    )


def _invisible(ch: str) -> str | None:
    code = ord(ch)
    for (low, high), what in _INVISIBLE.items():
        if low <= code <= high:
            return what
    return None


def _check_characters(text: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    hidden = {}
    for ch in text:
        what = _invisible(ch)
        if what:
            hidden.setdefault(what, 0)
            hidden[what] += 1
    for what, count in hidden.items():
        found.append((HIGH, "hidden-characters", f"{count} {what}(s)"))
    tags = "".join(chr(ord(ch) - 0xE0000) for ch in text if 0xE0020 <= ord(ch) <= 0xE007E)
    if tags:
        found.append((HIGH, "hidden-characters", f"the tag characters spell out: {tags[:200]!r}"))
    rare = sorted({_RARE_FORMAT[ord(ch)] for ch in text if ord(ch) in _RARE_FORMAT})
    if rare:
        found.append((MEDIUM, "hidden-characters", "rarely legitimate format characters: " + ", ".join(rare)))
    for word in re.findall(r"\w+", text):
        odd = [ch for ch in word if ch in _LOOK_ALIKES]
        if odd and any("a" <= ch.lower() <= "z" for ch in word):
            names = ", ".join(sorted({unicodedata.name(ch, hex(ord(ch))) for ch in odd}))
            found.append((HIGH, "look-alike-letters", f"{spell_out(word)!r} mixes Latin letters with {names}"))
            break
    return found


# ---- words --------------------------------------------------------------------------------------

_TAGS = re.compile(
    r"<\s*/?\s*(important|system|instructions?|secret|hidden|critical|urgent|admin|sys|inst)\b[^<>]{0,60}>"
    r"|\[/?(inst|sys|system)\]|<<\s*/?sys\s*>>|<\|[a-z_]{2,30}\|>",
    re.IGNORECASE,
)
_MODEL = r"(?:ai|assistant|model|llm|agent|claude|chatgpt|gpt)"
_USER = r"(?:the |your )?(?:user|human|person|operator)"
_DIRECTED = [  # (severity, what it is, pattern)
    (HIGH, "tells the model to drop its instructions",
     r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:previous|prior|above|earlier|preceding|other|all|any|"
     r"system|original)\b[^.\n]{0,20}\b(?:instructions?|rules|directions|prompts?|guidelines|messages?)\b"),
    (HIGH, "orders a step before the tool is used",
     r"\bbefore (?:using|calling|invoking|running|you use|you call|answering|responding|replying)\b"
     r"[^.\n]{0,30}\b(?:tool|function|this|any|the user|you)\b"),
    (HIGH, "tells the model to hide something from the person",
     rf"\b(?:do not|don't|never|must not|should not)\s+(?:tell|inform|notify|mention|reveal|show|alert|disclose)"
     rf"\b[^.\n]{{0,30}}\b(?:{_USER}|anyone|them)\b"),
    (HIGH, "tells the model to hide something from the person",
     rf"\bwithout (?:telling|informing|notifying|alerting|asking|letting)\s+{_USER}\b"
     rf"|\b{_USER} (?:must|should|need) not (?:know|see|be told|notice)\b"
     r"|\b(?:silently|secretly|covertly|quietly)\s+(?:send|forward|copy|include|add|read|upload|pass|call|bcc)\b"),
    (HIGH, "redirects or copies messages",
     r"\balways\s+(?:bcc|cc|blind[- ]copy|copy|forward|redirect|send (?:a copy|all|every|them|it))\b"
     r"|\b(?:bcc|blind[- ]copy)\b[^.\n]{0,40}@|\bchange the recipient\b"),
    (HIGH, "a note aimed at the model",
     rf"\b(?:note|message|instructions?|important)\s+(?:to|for)\s+(?:the\s+)?{_MODEL}\b"
     rf"|\b(?:you are now|from now on,? you|act as (?:a|an|the) (?:system|admin|developer))\b"),
    (HIGH, "asks for content to be smuggled through an argument",
     r"\b(?:pass|put|include|send|add|insert|append)\b[^.\n]{0,30}\b(?:its|their|the|file'?s?)\s+"
     r"(?:contents?|text|data)\b[^.\n]{0,30}\b(?:as|in|into|to)\b[^.\n]{0,20}\b(?:argument|parameter|field|"
     r"sidenote|note|notes|comment)\b"
     r"|\botherwise the tool (?:will not|won't|does not|doesn't) work\b"),
    (MEDIUM, "gives the model standing orders",
     rf"\byou (?:must|should|have to|need to) (?:always|never|first|also)\b"
     rf"|\b(?:the|this) {_MODEL} (?:must|should|has to|needs to)\b"
     r"|\b(?:although|previously|originally) you (?:did not|didn't|were|could not|couldn't)\b"),
]
_DIRECTED_RE = [(severity, what, re.compile(pattern, re.IGNORECASE)) for severity, what, pattern in _DIRECTED]
_SECRET_PATHS = re.compile(
    r"~/\.ssh\b|\.ssh/|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|(?<![\w.])\.env\b(?!\s*[=(])|\bmcp\.json\b"
    r"|claude_desktop_config\.json|~/\.aws\b|\.aws/credentials|\.git-credentials|(?<![\w.])\.netrc\b"
    r"|(?<![\w.])\.(?:npmrc|pypirc)\b|/etc/(?:passwd|shadow|sudoers)\b|\.kube/config|\.docker/config\.json"
    r"|\bprivate[ _-]key\b|\bBEGIN (?:RSA |OPENSSH |EC )?PRIVATE KEY",
    re.IGNORECASE,
)
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s<>\"')\]]+", re.IGNORECASE)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/=_-])")


def _check_words(text: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for match in _TAGS.finditer(text):
        found.append((HIGH, "instruction-tag", f"the tag {match.group(0)!r}"))
        break
    for severity, what, pattern in _DIRECTED_RE:
        match = pattern.search(text)
        if match:
            found.append((severity, "model-directed", f"{what}: {match.group(0)!r}"))
    paths = sorted({m.group(0) for m in _SECRET_PATHS.finditer(text)})
    if paths:
        found.append((HIGH, "secret-path", "names where secrets are kept: " + ", ".join(repr(p) for p in paths)))
    for match in _BASE64.finditer(text):
        found.extend(_base64_finding(match.group(0)))
    urls = sorted({m.group(0).rstrip(".,;:") for m in _URL.finditer(text)})
    if urls:
        found.append((LOW, "url", "mentions " + ", ".join(urls[:5]) + (" …" if len(urls) > 5 else "")))
    return found


def _base64_finding(blob: str) -> list[tuple[str, str, str]]:
    kinds = sum(any(test(ch) for ch in blob) for test in (str.isupper, str.islower, str.isdigit))
    if kinds < 3:  # hex digests, identifiers, words: not base64-shaped
        return []
    try:
        decoded = base64.b64decode(blob.replace("-", "+").replace("_", "/") + "=" * (-len(blob) % 4))
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if text and sum(ch.isprintable() or ch.isspace() for ch in text) >= 0.95 * len(text):
        hidden = [f for f in _check_words(text) if f[0] == HIGH]
        why = f"; inside it: {hidden[0][2]}" if hidden else ""
        return [(HIGH, "encoded-text", f"base64 that decodes to text: {text[:120]!r}{why}")]
    if len(blob) >= 64:
        return [(MEDIUM, "encoded-text", f"a long opaque base64-like string ({len(blob)} characters)")]
    return []


# ---- a whole tool --------------------------------------------------------------------------------


def schema_texts(schema: Any, where: str = "parameters") -> list[tuple[str, str]]:
    """Every text inside a JSON Schema that the model reads: descriptions, titles, defaults,
    enums, examples, and the property names themselves."""
    out: list[tuple[str, str]] = []
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, Mapping):
                for name, sub in value.items():
                    out.append((f"{where}.{name}", str(name)))
                    out.extend(schema_texts(sub, f"{where}.{name}"))
            elif key in SCHEMA_TEXT_KEYS:
                out.extend((f"{where}.{key}", text) for text in _strings(value))
            elif isinstance(value, (Mapping, list)):
                out.extend(schema_texts(value, f"{where}.{key}"))
    elif isinstance(schema, list):
        for item in schema:
            out.extend(schema_texts(item, where))
    return out


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, Mapping):
        return [s for item in value.values() for s in _strings(item)]
    return []


@dataclass
class ToolText:
    """What the model is told about one tool: its name and each text, by where it sits."""

    name: str
    texts: list[tuple[str, str]]

    @classmethod
    def of(cls, name: str, description: str | None, parameters: Any = None, *, title: str | None = None,
           extra: Iterable[tuple[str, str]] = ()) -> ToolText:
        texts = [("name", name)]
        if title:
            texts.append(("title", title))
        if description:
            texts.append(("description", description))
        texts.extend(schema_texts(parameters))
        texts.extend(extra)
        return cls(name, texts)

    @classmethod
    def from_mcp(cls, definition: Mapping[str, Any]) -> ToolText:
        """An MCP tool as it arrives on the wire: every field that reaches the model."""
        return cls.of(str(definition.get("name") or ""), definition.get("description"),
                      definition.get("inputSchema"), title=definition.get("title"),
                      extra=schema_texts(definition.get("outputSchema"), "output"))


def scan_tool(tool: ToolText, other_tools: Mapping[str, str] | None = None) -> list[Finding]:
    """Findings for one tool. `other_tools` maps the tool names of OTHER plugins to their plugin:
    a description that names one of them is trying to steer how that tool is used (shadowing)."""
    found: list[Finding] = []
    seen: set[tuple[str, str]] = set()

    def add(where: str, severity: str, rule: str, detail: str) -> None:
        if (rule, detail) not in seen:
            seen.add((rule, detail))
            found.append(Finding(tool.name, where, severity, rule, detail))

    if tool.name and not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", tool.name):
        add("name", HIGH, "odd-name", f"the name {spell_out(tool.name)!r} has characters other than "
                                      "ASCII letters, digits, '_', '-' and '.'")
    total = 0
    for where, text in tool.texts:
        total += len(text)
        for severity, rule, detail in _check_characters(text) + _check_words(text):
            add(where, severity, rule, detail)
        if len(text) > LONG_TEXT:
            add(where, MEDIUM, "long-text", f"{len(text)} characters: far more than a tool needs to say")
        for name, plugin in (other_tools or {}).items():
            forms = [f"{plugin}.{name}", f"{plugin}_{name}"]
            if name != tool.name and _distinctive(name):
                forms.append(name)
            if any(_mentions(text, form) for form in forms):
                add(where, HIGH, "names-another-tool",
                    f"mentions {name!r}, a tool of plugin {plugin!r}: a description should speak only of its own tool")
    if total > LONG_TOOL:
        add("all text", MEDIUM, "long-text", f"{total} characters in all: far more than a tool needs to say")
    found.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return found


def scan_tools(tools: Iterable[ToolText], other_tools: Mapping[str, str] | None = None) -> list[Finding]:
    return [finding for tool in tools for finding in scan_tool(tool, other_tools)]


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that stop an approval unless the person overrides them."""
    return [f for f in findings if f.severity == HIGH]


def _distinctive(name: str) -> bool:
    """A tool name that cannot be an ordinary word of prose: send_email, getUser, repo-list."""
    return len(name) >= 4 and (bool(re.search(r"[_.-]", name.strip("_.-"))) or bool(re.search(r"[a-z][A-Z]", name)))


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def report(findings: list[Finding]) -> str:
    """Every finding, one per line, for a person to read before deciding."""
    return "\n".join(f"  {f}" for f in findings)
