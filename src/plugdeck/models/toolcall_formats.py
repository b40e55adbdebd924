"""Tool calls that an open model wrote as text, read back as calls.

When a server's own tool parser is off or broken, the call arrives in `content`. The formats read
here are the ones the model families document in their chat templates:

    hermes           <tool_call>{"name": "f", "arguments": {...}}</tool_call>   (Hermes, Qwen 2.5/3)
    llama3_json      {"name": "f", "parameters": {...}}, optionally after <|python_tag|>, several
                     separated by ";"; and Llama 3.1's <function=f>{...}</function>
    llama4_pythonic  [f(a=1, b="x"), g()], optionally inside <|python_start|> ... <|python_end|>
    mistral          [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...] (before v11) or
                     [TOOL_CALLS]f[ARGS]{...} repeated (v11 and later)
    deepseek         <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f ```json {...}```
                     <｜tool▁call▁end｜>...<｜tool▁calls▁end｜> (V3, R1) or f<｜tool▁sep｜>{...} (V3.1)
    granite          <|tool_call|>[{"name": "f", "arguments": {...}}] (Granite 3.0; 3.1 writes <tool_call>)
    qwen3_coder      <tool_call><function=f><parameter=a>value</parameter>...</function></tool_call>
    glm45            <tool_call>f<arg_key>a</arg_key><arg_value>value</arg_value>...</tool_call> (GLM-4.5/4.6)
    kimi_k2          <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>
                     {...}<|tool_call_end|>...<|tool_calls_section_end|>
    harmony          gpt-oss: <|channel|>commentary to=functions.f <|constrain|>json<|message|>{...}<|call|>
    lmstudio         [TOOL_REQUEST]{"name": "f", "arguments": {...}}[END_TOOL_REQUEST] (LM Studio's default tool use)
    json             a bare {"name": "f", "arguments": {...}}, a list of them, or one in a ```json fence

The rule (`parse_tool_calls`): a format with its own marker (every one but the bare JSON and pythonic
shapes) is a call once the marker is there; text before it stays the answer's text, and a call that
cannot be read or names a tool not offered is still a call, refused with a reason the model reads.
A reply without a marker is a call only when ALL of it reads as calls to OFFERED tools: a model
explaining JSON to a person must not call anything. Anything else stays text.

Qwen3-Coder and GLM write each argument's value as plain text, so its JSON type comes from the tool's
schema when `offered` maps names to parameter schemas: a string parameter keeps the text as written,
any other reads it as JSON (or a Python literal), falling back to the text.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

from .base import ToolCall
from .toolcall_parsers import ArgumentsError, parse_arguments

# Formats a profile may name; "auto" tries them all, "native" reads only the server's tool_calls and
# "prompted" describes the tools in the system prompt (for servers with no tool support) and reads
# the reply like "auto".
# Order matters for "auto": Qwen3-Coder and GLM share Hermes' <tool_call> and are told apart by what
# follows it, so they are tried first; a parser that sees another family's shape returns None.
# Kimi K2's <|tool_call_begin|> is also DeepSeek's in ASCII, so Kimi (told by its section or arguments token) is first.
TEXT_FORMATS = ("qwen3_coder", "glm45", "hermes", "llama3_json", "llama4_pythonic", "mistral", "kimi_k2", "deepseek",
                "granite", "harmony", "lmstudio", "json")
TOOL_FORMATS = ("auto", "native", "prompted", *TEXT_FORMATS)

_DS = {  # DeepSeek's markers: fullwidth bars and the sentencepiece space; some servers print ASCII ones
    word: "<[｜|]" + word.replace("_", "[▁_]") + "[｜|]>"
    for word in ("tool_calls_begin", "tool_calls_end", "tool_call_begin", "tool_call_end", "tool_sep")
}
# The strings that open a call in each tagged format (for the stream's hold-back too).
MARKERS: dict[str, tuple[str, ...]] = {
    "hermes": ("<tool_call>",),
    "llama3_json": ("<|python_tag|>", "<function="),
    "llama4_pythonic": ("<|python_start|>",),
    "mistral": ("[TOOL_CALLS]",),
    "deepseek": ("<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>", "<|tool_calls_begin|>", "<|tool_call_begin|>"),
    "granite": ("<|tool_call|>", "<tool_call>"),
    "qwen3_coder": ("<tool_call>", "<function="),
    "glm45": ("<tool_call>",),
    "kimi_k2": ("<|tool_calls_section_begin|>", "<|tool_call_begin|>"),
    # A gpt-oss reply is held whole from its first header: its channels are sorted at the end.
    "harmony": ("<|channel|>", "<|start|>"),
    "lmstudio": ("[TOOL_REQUEST]",),
    "json": (),
}
UNTAGGED = {"llama3_json": "json", "llama4_pythonic": "pythonic", "json": "json"}  # formats with a bare shape
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')


@dataclass(slots=True)
class TextCalls:
    """What a reply held: its format, the text that stays the answer's, and the calls (a call that could
    not be read carries `error`, so the model is told rather than the call silently becoming text)."""

    format: str
    text: str
    calls: list[ToolCall] = field(default_factory=list)
    reasoning: str = ""  # thinking the format carries in the same text (gpt-oss' analysis channel)

    @property
    def failed(self) -> list[ToolCall]:
        return [c for c in self.calls if c.error]


Offered = dict[str, dict[str, Any]]  # the offered tools' wire names and parameter schemas ({} when unknown)


def parse_tool_calls(text: str, offered: Collection[str] | Mapping[str, dict[str, Any]], tool_format: str = "auto"
                     ) -> TextCalls | None:
    """The tool calls a reply wrote as text, or None when it stays text. `offered`: the tools' wire names,
    or a mapping of them to their parameter schemas (which type the values of key-by-key formats)."""
    if not text or not offered or tool_format == "native":
        return None
    formats = TEXT_FORMATS if tool_format in ("auto", "prompted") else (tool_format,)
    if tool_format not in TOOL_FORMATS:
        raise ValueError(f"unknown tool format {tool_format!r}; known: {', '.join(TOOL_FORMATS)}")
    offered = dict(offered) if isinstance(offered, Mapping) else dict.fromkeys(offered, {})
    for name in formats:  # a marker decides: the first format whose marker is in the text
        parsed = _TAGGED[name](text, offered) if name in _TAGGED else None
        if parsed is not None:
            return parsed
    bare = text.strip()
    if tool_format in ("auto", "prompted", "json", "llama3_json"):
        parsed = _bare_json(bare, offered, tool_format)
        if parsed is not None:
            return parsed
    if tool_format in ("auto", "prompted", "llama4_pythonic"):
        return _bare_pythonic(bare, offered, "llama4_pythonic")
    return None


# ---- calls from their pieces ------------------------------------------------------------------------


def new_call_id() -> str:
    """Calls read from text have no id: a fresh one each, so results of different steps never share one."""
    return f"call_{secrets.token_hex(6)}"


def _call(name: str, raw: Any, call_id: str | None = None) -> ToolCall:
    """One call from a name and its arguments (a dict, or JSON text repaired only where unambiguous)."""
    call_id = call_id or new_call_id()
    raw_text = raw if isinstance(raw, str) else json.dumps(raw) if raw is not None else ""
    if raw is not None and not isinstance(raw, (str, dict)):
        return ToolCall(call_id, name, None, raw_text, f"the arguments must be a JSON object, got {type(raw).__name__}")
    try:
        arguments, repaired = parse_arguments(raw)
    except ArgumentsError as exc:
        return ToolCall(call_id, name, None, raw_text, str(exc))
    return ToolCall(call_id, name, arguments, raw_text, repaired=repaired)


def _broken(body: str, why: str) -> ToolCall:
    """A call that could not be read: named when the name can be found, so the model knows which one."""
    found = _NAME.search(body) or re.match(r"\s*([A-Za-z_][\w.\-]*)", body)
    return ToolCall(new_call_id(), found.group(1) if found else "", None, body.strip(), why)


def _from_object(data: Any, body: str) -> ToolCall:
    """{"name", "arguments" | "parameters", "id"?}, or OpenAI's {"type": "function", "function": {...}}."""
    if isinstance(data, dict) and isinstance(data.get("function"), dict):
        data = data["function"]
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return _broken(body, "a tool call must be a JSON object with a \"name\" and its \"arguments\"")
    raw = data.get("arguments", data.get("parameters", {}))
    return _call(data["name"], raw, data.get("id") if isinstance(data.get("id"), str) else None)


def _objects(body: str) -> list[ToolCall]:
    """A JSON object or list of call objects; one refused call when the JSON cannot be read."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        try:
            data, _ = parse_arguments(body)  # an object with an unambiguous slip (trailing comma, ...)
        except ArgumentsError as exc:
            return [_broken(body, f"the tool call is not valid JSON ({exc})")]
    items = data if isinstance(data, list) else [data]
    if not items:
        return [_broken(body, "the tool call list is empty")]
    return [_from_object(item, body) for item in items]


def _outside(text: str, spans: list[tuple[int, int]]) -> str:
    """The text outside the calls' spans: what stays the answer's text."""
    pieces, at = [], 0
    for start, end in spans:
        pieces.append(text[at:start])
        at = end
    pieces.append(text[at:])
    return "".join(pieces).strip()


# ---- the tagged formats -----------------------------------------------------------------------------


_TOOL_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)  # Hermes', Qwen3-Coder's and GLM's wrapper
_LMSTUDIO = re.compile(r"\[TOOL_REQUEST\](.*?)(?:\[END_TOOL_REQUEST\]|$)", re.S)


def _json_blocks(text: str, fmt: str, block: re.Pattern[str]) -> TextCalls:
    """Calls as JSON objects, each inside its format's open and close tags; the rest stays text."""
    calls, spans = [], []
    for match in block.finditer(text):
        calls += _objects(match.group(1).strip())
        spans.append(match.span())
    return TextCalls(fmt, _outside(text, spans), calls)


def _hermes(text: str, offered: Offered) -> TextCalls | None:
    if "<tool_call>" not in text:
        return None
    if any(m.group(1).strip().startswith("[") and "</tool_call>" not in m.group(0) for m in _TOOL_CALL.finditer(text)):
        return None  # Granite 3.1's <tool_call>[...]: its own format
    return _json_blocks(text, "hermes", _TOOL_CALL)


def _lmstudio(text: str, offered: Offered) -> TextCalls | None:
    return _json_blocks(text, "lmstudio", _LMSTUDIO) if "[TOOL_REQUEST]" in text else None


def _granite(text: str, offered: Offered) -> TextCalls | None:
    for marker in ("<|tool_call|>", "<tool_call>"):
        at = text.find(marker)
        if at < 0:
            continue
        body = text[at + len(marker):].strip()
        if marker == "<tool_call>" and not body.startswith("["):
            return None  # Hermes' shape, read by its parser
        return TextCalls("granite", text[:at].strip(), _objects(body))
    return None


_MISTRAL_V11 = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(?:\[CALL_ID\]\s*(\w+)\s*)?(?:\[ARGS\])?\s*(.*)", re.S)


def _mistral(text: str, offered: Offered) -> TextCalls | None:
    at = text.find("[TOOL_CALLS]")
    if at < 0:
        return None
    rest = text[at + len("[TOOL_CALLS]"):]
    if rest.lstrip().startswith(("[", "{")):  # before v11: one JSON list after the token
        return TextCalls("mistral", text[:at].strip(), _objects(rest.strip()))
    calls = []
    for piece in rest.split("[TOOL_CALLS]"):  # v11 and later: name[ARGS]{...} per call
        match = _MISTRAL_V11.fullmatch(piece)
        if match is None:
            calls.append(_broken(piece, "the tool call has no name before its arguments"))
            continue
        name, call_id, raw = match.groups()
        calls.append(_call(name, raw.strip(), call_id))
    return TextCalls("mistral", text[:at].strip(), calls)


_DS_BEGIN = re.compile(_DS["tool_calls_begin"] + "|" + _DS["tool_call_begin"])
_DS_CALL = re.compile(_DS["tool_call_begin"] + r"(.*?)(?:" + _DS["tool_call_end"] + "|$)", re.S)
_DS_SEP = re.compile(_DS["tool_sep"])
_DS_END = re.compile(_DS["tool_calls_end"])


def _deepseek(text: str, offered: Offered) -> TextCalls | None:
    begin = _DS_BEGIN.search(text)
    if begin is None:
        return None
    region = text[begin.start():]
    calls = []
    for match in _DS_CALL.finditer(region):
        body = _DS_END.split(match.group(1))[0]
        parts = _DS_SEP.split(body, maxsplit=1)
        if len(parts) != 2:
            calls.append(_broken(body, "the tool call has no separator between its name and arguments"))
            continue
        head, tail = parts[0].strip(), parts[1].strip()
        if head == "function":  # V3 and R1: the name on the first line, the arguments in a ```json fence
            name, _, tail = tail.partition("\n")
            head = name.strip()
        calls.append(_call(head, tail.strip()))
    if not calls:
        calls.append(_broken(region, "the tool calls block holds no call"))
    return TextCalls("deepseek", text[:begin.start()].strip(), calls)


_FUNCTION_TAG = re.compile(r"<function=([^>]+)>(.*?)(?:</function>|$)", re.S)


def _llama3(text: str, offered: Offered) -> TextCalls | None:
    at = text.find("<|python_tag|>")
    if at >= 0:  # what follows is JSON (custom tools) or a pythonic call (built-in tools)
        body = text[at + len("<|python_tag|>"):].strip()
        parsed = _json_calls(body, "llama3_json")
        if parsed is None:
            parsed = _pythonic_calls(body if body.startswith("[") else f"[{body}]", "llama3_json", offered, strict=False)
        if parsed is None:
            parsed = TextCalls("llama3_json", "", [_broken(body, "the call after <|python_tag|> cannot be read")])
        parsed.text = text[:at].strip()
        return parsed
    if "<function=" in text:
        calls, spans = [], []
        for match in _FUNCTION_TAG.finditer(text):
            calls.append(_call(match.group(1).strip(), match.group(2).strip()))
            spans.append(match.span())
        return TextCalls("llama3_json", _outside(text, spans), calls)
    return None


def _llama4(text: str, offered: Offered) -> TextCalls | None:
    at = text.find("<|python_start|>")
    if at < 0:
        return None
    body = text[at + len("<|python_start|>"):].split("<|python_end|>")[0].strip()
    parsed = _pythonic_calls(body, "llama4_pythonic", offered, strict=False)
    if parsed is None:
        head = re.match(r"\[?\s*([A-Za-z_][\w.]*)", body)
        why = "the call list cannot be read as Python calls"
        parsed = TextCalls("llama4_pythonic", "", [ToolCall(new_call_id(), head.group(1) if head else "", None, body, why)])
    parsed.text = text[:at].strip()
    return parsed


# ---- the key-by-key formats: each argument's value written as text ------------------------------------


def typed_value(raw: str, schema: dict[str, Any] | None) -> Any:
    """An argument written as text, as the JSON value the tool's schema asks for (see the module's doc)."""
    types = (schema or {}).get("type")
    types = set(types) if isinstance(types, list) else {types} if types else set()
    if "string" in types and not types - {"string", "null"}:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        if not types:
            return raw  # no schema to say otherwise: the text as written
    try:
        return ast.literal_eval(raw)  # True, None, {'a': 1}: how a template's `| string` writes them
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw  # the tool's own validation tells the model what it expected


def _keyed_call(name: str, pairs: list[tuple[str, str]], body: str, offered: Offered) -> ToolCall:
    properties = (offered.get(name) or {}).get("properties") or {}
    arguments: dict[str, Any] = {}
    for key, raw in pairs:
        if key in arguments:
            return ToolCall(new_call_id(), name, None, body.strip(), f"the argument {key!r} is given twice")
        arguments[key] = typed_value(raw, properties.get(key))
    return ToolCall(new_call_id(), name, arguments, json.dumps(arguments, ensure_ascii=False, default=str))


_QWEN_FUNCTION = re.compile(r"\s*<function=([^>\n]*)>(.*?)(</function>|$)", re.S)
_QWEN_PARAMETER = re.compile(r"<parameter=([^>\n]*)>(.*?)(</parameter>|(?=<parameter=)|$)", re.S)


def _qwen3_coder(text: str, offered: Offered) -> TextCalls | None:
    """Qwen3-Coder: <function=...> inside <tool_call> (the wrapper is sometimes left out)."""
    wrapped = [m for m in _TOOL_CALL.finditer(text) if m.group(1).lstrip().startswith("<function=")]
    if wrapped:
        found = [(m.span(), m.group(1)) for m in wrapped]
    elif re.search(r"<function=[^>\n]*>\s*(<parameter=|</function>)", text):
        found = [(m.span(), m.group(0)) for m in _QWEN_FUNCTION.finditer(text)]
    else:
        return None
    calls = [_qwen_call(body, offered) for _, body in found]
    return TextCalls("qwen3_coder", _outside(text, [span for span, _ in found]), calls)


def _qwen_call(body: str, offered: Offered) -> ToolCall:
    function = _QWEN_FUNCTION.match(body)
    if function is None or not function.group(1).strip():
        return _broken(body, "the tool call has no <function=NAME> tag")
    name, inner = function.group(1).strip(), function.group(2)
    if not function.group(3):
        return ToolCall(new_call_id(), name, None, body.strip(), "the tool call's </function> tag is missing")
    pairs = []
    for match in _QWEN_PARAMETER.finditer(inner):
        if not match.group(3):
            why = f"the parameter {match.group(1).strip()!r} has no closing </parameter> tag"
            return ToolCall(new_call_id(), name, None, body.strip(), why)
        value = match.group(2).removeprefix("\n").removesuffix("\n")  # the template writes one either side
        pairs.append((match.group(1).strip(), value))
    if _QWEN_PARAMETER.sub("", inner).strip():
        return ToolCall(new_call_id(), name, None, body.strip(), "the tool call holds text outside its <parameter> tags")
    return _keyed_call(name, pairs, body, offered)


_GLM_HEAD = re.compile(r"\s*([A-Za-z_][\w.\-]*)\s*(?=<arg_key>|$)", re.S)
_GLM_PAIR = re.compile(r"\s*<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>\s*", re.S)


def _glm45(text: str, offered: Offered) -> TextCalls | None:
    """GLM-4.5/4.6: the name right after <tool_call>, then <arg_key>/<arg_value> pairs."""
    found = [m for m in _TOOL_CALL.finditer(text) if _GLM_HEAD.match(m.group(1))]
    if not found:
        return None
    calls = []
    for match in found:
        body = match.group(1)
        head = _GLM_HEAD.match(body)
        name, rest, pairs = head.group(1), body[head.end():], []
        at = 0
        while at < len(rest) and (pair := _GLM_PAIR.match(rest, at)):
            pairs.append((pair.group(1).strip(), pair.group(2)))
            at = pair.end()
        if rest[at:].strip() or not match.group(0).endswith("</tool_call>"):
            calls.append(ToolCall(new_call_id(), name, None, body.strip(),
                                  "the arguments must be complete <arg_key>...</arg_key><arg_value>...</arg_value> pairs"
                                  " and the call must end with </tool_call>"))
            continue
        calls.append(_keyed_call(name, pairs, body, offered))
    return TextCalls("glm45", _outside(text, [m.span() for m in found]), calls)


# ---- Kimi K2 and gpt-oss: their own special tokens around JSON arguments ------------------------------


_KIMI_BEGIN = re.compile(r"<\|tool_calls_section_begin\|>|<\|tool_call_begin\|>")
_KIMI_CALL = re.compile(r"<\|tool_call_begin\|>(.*?)(?:<\|tool_call_end\|>|$)", re.S)
_KIMI_ID = re.compile(r"\s*(?:functions\.)?([A-Za-z_][\w.\-]*?)(?::\d+)?\s*<\|tool_call_argument_begin\|>(.*)", re.S)


def _kimi_k2(text: str, offered: Offered) -> TextCalls | None:
    begin = _KIMI_BEGIN.search(text)
    if begin is None or not ("<|tool_calls_section_begin|>" in text or "<|tool_call_argument_begin|>" in text):
        return None
    region = text[begin.start():].split("<|tool_calls_section_end|>")[0]
    calls = []
    for match in _KIMI_CALL.finditer(region):
        head = _KIMI_ID.match(match.group(1))
        if head is None:
            calls.append(_broken(match.group(1).replace("functions.", "", 1),
                                 "the tool call needs functions.NAME:INDEX then <|tool_call_argument_begin|>"))
            continue
        calls.append(_call(head.group(1), head.group(2).strip()))  # its own id "functions.f:0" repeats across steps
    if not calls:
        calls.append(_broken(region, "the tool calls section holds no call"))
    return TextCalls("kimi_k2", text[:begin.start()].strip(), calls)


_HARMONY_MESSAGE = re.compile(
    r"(?:<\|start\|>\s*assistant)?(?P<head>[^<]*?)<\|channel\|>(?P<channel>[^<]*?)(?:<\|constrain\|>\s*\w+)?\s*"
    r"<\|message\|>(?P<body>.*?)(?P<end><\|call\|>|<\|end\|>|<\|return\|>|(?=<\|start\|>)|$)", re.S)
_RECIPIENT = re.compile(r"to=functions\.([A-Za-z_][\w.\-]*)")


def _harmony(text: str, offered: Offered) -> TextCalls | None:
    read = harmony_channels(text) if _RECIPIENT.search(text) else None
    return read if read is not None and read.calls else None


def harmony_channels(text: str) -> TextCalls | None:
    """gpt-oss' messages sorted out: one addressed to=functions.NAME is a call, the analysis channel is
    reasoning, final and commentary messages are the answer's text. None: no harmony message here."""
    if "<|message|>" not in text:
        return None
    first = min(at for at in (text.find("<|start|>"), text.find("<|channel|>"), len(text)) if at >= 0)
    calls, said, thought = [], [text[:first]], []
    for match in _HARMONY_MESSAGE.finditer(text, first):
        header = match.group("head") + " " + match.group("channel")
        recipient = _RECIPIENT.search(header)
        body = match.group("body").strip()
        if recipient:
            name = recipient.group(1)
            if match.group("end") in ("<|end|>", "<|return|>"):
                calls.append(ToolCall(new_call_id(), name, None, body, "the call's message must end with <|call|>"))
            else:
                calls.append(_call(name, body))
        elif match.group("channel").strip().startswith("analysis"):
            thought.append(body)
        else:
            said.append(body)
    if len(said) + len(thought) + len(calls) == 1:
        return None
    return TextCalls("harmony", "\n".join(said).strip(), calls, "\n".join(thought).strip())


_TAGGED = {"qwen3_coder": _qwen3_coder, "glm45": _glm45, "kimi_k2": _kimi_k2, "harmony": _harmony, "lmstudio": _lmstudio,
           "mistral": _mistral, "deepseek": _deepseek, "granite": _granite, "hermes": _hermes,
           "llama3_json": _llama3, "llama4_pythonic": _llama4}


# ---- the bare shapes: all the text must be calls to offered tools -----------------------------------


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)
CALL_KEYS = ("name", "function", "type")  # what a call object's first key may be


def _json_calls(body: str, fmt: str) -> TextCalls | None:
    """JSON call objects: one, a list, or several separated by ";" (Llama 3). None: not JSON calls."""
    fence = _FENCE.match(body)
    body = fence.group(1) if fence else body
    if not body.startswith(("{", "[")) or (body[0] == "[" and not body[1:].lstrip().startswith(("{", "]"))):
        return None  # pythonic calls and prose in brackets are not JSON calls
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            items = [json.loads(part) for part in body.split(";") if part.strip()]
        except json.JSONDecodeError:
            return None
    if not items or not all(isinstance(i, dict) and ("name" in i or "function" in i) for i in items):
        return None
    return TextCalls(fmt, "", [_from_object(item, body) for item in items])


def _bare_json(bare: str, offered: Offered, fmt: str) -> TextCalls | None:
    if fmt not in ("json", "llama3_json"):  # auto: Llama 3 names the arguments "parameters"
        fmt = "llama3_json" if re.search(r'"parameters"\s*:', bare[:2000]) else "json"
    parsed = _json_calls(bare, fmt)
    if parsed is None:
        # Malformed JSON that begins as a call to an offered tool: a call to refuse, not text.
        start = bare[:200]
        name = _NAME.search(start)
        if bare.startswith(("{", "[", "```")) and name and name.group(1) in offered and re.match(
                r'^(?:```(?:json)?\s*)?\[?\s*\{\s*"name"', start) and not _complete_json_then_text(bare):
            return TextCalls(fmt, "", [_broken(bare, "the tool call is not valid JSON and cannot be repaired")])
        return None
    if any(c.name not in offered for c in parsed.calls):
        return None  # JSON about something else: it stays text
    return parsed


def _complete_json_then_text(bare: str) -> bool:
    """A whole JSON value followed by more text: prose quoting a call, not a broken call."""
    try:
        json.JSONDecoder().raw_decode(_FENCE.sub(r"\1", bare))
    except json.JSONDecodeError:
        return False
    return True


def _bare_pythonic(bare: str, offered: Offered, fmt: str) -> TextCalls | None:
    if not bare.startswith("["):
        return None
    return _pythonic_calls(bare, fmt, offered, strict=True)


def _pythonic_calls(body: str, fmt: str, offered: Offered, strict: bool) -> TextCalls | None:
    """[f(a=1), g(b="x")] read with Python's parser (literals only, nothing evaluated). `strict`: every
    name must be offered and everything must parse, or it stays text."""
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError:
        head = re.match(r"\[\s*([A-Za-z_][\w.]*)\s*\(", body)
        quoted = "]" in body and not body.rstrip().endswith("]")  # a call list, then prose: text
        if head and head.group(1) in offered and not quoted:
            why = "the call list cannot be read as Python calls"
            return TextCalls(fmt, "", [ToolCall(new_call_id(), head.group(1), None, body, why)])
        return None
    if not isinstance(tree, ast.List) or not tree.elts or not all(isinstance(e, ast.Call) for e in tree.elts):
        return None
    calls = []
    for node in tree.elts:
        name = ast.unparse(node.func).removesuffix(".call")  # Llama 3's built-ins: brave_search.call(...)
        if strict and name not in offered:
            return None
        if node.args or any(k.arg is None for k in node.keywords):
            calls.append(ToolCall(new_call_id(), name, None, ast.unparse(node),
                                  "the call must name its arguments (name=value), with no positional ones"))
            continue
        try:
            arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except (ValueError, SyntaxError, TypeError):
            calls.append(ToolCall(new_call_id(), name, None, ast.unparse(node), "the arguments must be plain literals"))
            continue
        calls.append(ToolCall(new_call_id(), name, arguments, json.dumps(arguments, default=str)))
    return TextCalls(fmt, "", calls)
