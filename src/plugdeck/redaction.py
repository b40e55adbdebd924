"""One redactor for every secret the platform holds (R10).

Whatever loads a secret registers it here when it reads it: model API keys, OpenAPI credentials,
MCP servers' env and header values, knowledge-store and run-store passwords, the server's session
token. `redact(text)` and `redact_value(value)` then blank each registered secret out of anything
on its way to the model, the run store, traces or an error message:

- the value itself and its common encodings: base64 (standard and URL-safe, padded or not, at all
  three byte alignments, so a secret inside a longer base64 blob such as HTTP Basic's `user:secret`
  is found), hex (lower and upper case), URL encoding (percent, plus-for-space, either case of hex
  digits, twice encoded), JSON and HTML escaping, and the value reversed;
- fragments: any run of at least FRAGMENT characters of a secret of FRAGMENTS_FROM characters or
  more, in any of those forms (twice the length in hex, 4/3 in base64). An API that echoes "your key
  ...ab12cd34ef" is caught. Shorter runs are not: a fragment that short is as likely to be an
  ordinary word or number as a leak, and (for a random key) leaves most of it unknown. For the same
  reason a fragment made of one kind of character only (all lower-case letters, say, a word of a
  pass phrase) is not redacted; the whole secret always is;
- things shaped like keys whoever's they are: `Bearer ...`, `sk-...`, plugdeck API keys, JWTs,
  `api_key=...`, a password in a URL.

Secrets shorter than MIN_SECRET characters are not registered: blanking every "1234" would mangle
answers. A hostile service can always disguise what it echoes (XOR, pieces shorter than FRAGMENT);
redaction catches echoes, and the real protection is that a credential goes only to its own service.

Speed: each secret's forms are cut into their FRAGMENT-length pieces once, and all pieces of all
secrets form one compiled regular expression shaped as a trie, so a text is scanned once whatever
the number of secrets; a hit is then grown to the whole run of the secret it belongs to.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

MARK = "[redacted]"
MIN_SECRET = 6  # shorter values are not treated as secrets
FRAGMENT = 8  # a run of at least this many characters of a secret is a leak
FRAGMENTS_FROM = 12  # secrets shorter than this are matched whole only (in every encoding)

# Things shaped like credentials, redacted whether or not anyone registered them; one pattern, one pass.
_VALUE = r"[^\s\"',;&<>]"
_SHAPES = re.compile("|".join([
    r"(?P<scheme>\b(?i:bearer|basic))\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}",
    r"\bpdk_[0-9a-f]{10}_[A-Za-z0-9_-]{20,}",  # plugdeck server API keys
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,})\b",
    # api_key=..., "password": "...": a value with a digit or symbol in it, or a long one, so that
    # prose such as "secret: ingredient" stays as it is.
    r"(?P<name>\b(?i:(?:x-)?api[_-]?key|access[_-]?token|client[_-]?secret|secret|password|passwd|authorization))"
    rf"(?P<sep>[\"']?\s*[:=]\s*[\"']?)(?={_VALUE}*[^A-Za-z\s\"',;&<>]|{_VALUE}{{12}}){_VALUE}{{6,}}",
    r"(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+):[^@/\s]+@",  # scheme://user:password@
]))


def _shape(match: re.Match[str]) -> str:
    if match.group("scheme"):
        return f"{match.group('scheme')} {MARK}"
    if match.group("name"):
        return match.group("name") + match.group("sep") + MARK
    if match.group("userinfo"):
        return match.group("userinfo") + ":***@"  # the convention for URLs (libpq, SQLAlchemy)
    return MARK


@dataclass(frozen=True)
class _Form:
    text: str  # one way the secret can appear
    fragment: int | None  # the shortest run of it that counts as a leak; None: only the whole form


class Redactor:
    """Secrets registered once; every text scanned for all of them in one pass."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}  # value -> where it came from (for `sources`)
        self._compiled: tuple[re.Pattern[str] | None, dict[str, list[tuple[_Form, int]]]] | None = None
        for secret in secrets:
            self.register(secret)

    # ---- registering ------------------------------------------------------------------------------

    def register(self, value: str | None, source: str = "") -> None:
        """Treat `value` as a secret from now on (a no-op for values too short to be one)."""
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET:
            return
        with self._lock:
            if value in self._secrets:
                return
            self._secrets[value] = source
            self._compiled = None  # rebuilt on the next scan

    def forget(self, value: str) -> None:
        with self._lock:
            if self._secrets.pop(value, None) is not None:
                self._compiled = None

    def sources(self) -> list[str]:
        """Where the registered secrets came from (never the values), for diagnostics."""
        with self._lock:
            return sorted(set(self._secrets.values()))

    def __len__(self) -> int:
        return len(self._secrets)

    # ---- redacting --------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every registered secret (any form, any long enough piece) and key shape blanked."""
        if not text:
            return text
        pattern, index = self._compiled or self._compile()
        if pattern is not None:
            text = _blank(text, pattern, index)
        return _SHAPES.sub(_shape, text)

    def redact_value(self, value: Any) -> Any:
        """`value` (text, or JSON-like data) redacted throughout; the same object when nothing changed."""
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            changed = False
            cleaned = {}
            for key, item in value.items():
                new_key = self.redact(key) if isinstance(key, str) else key
                new_item = self.redact_value(item)
                changed = changed or new_key is not key or new_item is not item
                cleaned[new_key] = new_item
            return cleaned if changed else value
        if isinstance(value, (list, tuple)):
            items = [self.redact_value(item) for item in value]
            return items if any(a is not b for a, b in zip(items, value)) else value
        # Anything else reaches the model and the store as its str(); keep it unless that leaks.
        shown = str(value)
        cleaned_text = self.redact(shown)
        return value if cleaned_text == shown else cleaned_text

    def _compile(self):
        with self._lock:
            if self._compiled is not None:
                return self._compiled
            index: dict[str, list[tuple[_Form, int]]] = {}
            for secret in self._secrets:
                for form in _forms(secret):
                    size = form.fragment or len(form.text)
                    for offset in range(len(form.text) - size + 1):
                        index.setdefault(form.text[offset:offset + size], []).append((form, offset))
            pattern = re.compile(_trie_regex(index)) if index else None
            self._compiled = (pattern, index)
            return self._compiled


def _blank(text: str, pattern: re.Pattern[str], index: dict[str, list[tuple[_Form, int]]]) -> str:
    """Replace each run of a secret's form found through its pieces, grown to its full extent."""
    out: list[str] = []
    done = 0  # text before this is already written out
    position = 0
    while True:
        hit = pattern.search(text, position)
        if hit is None:
            break
        span = _grow(text, hit.start(), hit.group(), index[hit.group()], done)
        if span is None:
            position = hit.start() + 1
            continue
        start, end = span
        out.append(text[done:start])
        out.append(MARK)
        done = position = end
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _grow(text: str, at: int, piece: str, places: list[tuple[_Form, int]], floor: int) -> tuple[int, int] | None:
    """The longest run of a secret's form around the piece found at `at`, if it counts as a leak."""
    best: tuple[int, int] | None = None
    for form, offset in places:
        start, i = at, offset
        while i > 0 and start > floor and text[start - 1] == form.text[i - 1]:
            start, i = start - 1, i - 1
        end, j = at + len(piece), offset + len(piece)
        while j < len(form.text) and end < len(text) and text[end] == form.text[j]:
            end, j = end + 1, j + 1
        whole = end - start == len(form.text)
        if not whole and (form.fragment is None or not _mixed(text[start:end])):
            continue
        if best is None or end - start > best[1] - best[0]:
            best = (start, end)
    return best


def _mixed(run: str) -> bool:
    """At least two kinds of character: a piece of a key, not a word or a plain number."""
    kinds = {"lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other" for c in run}
    return len(kinds) >= 2


def _forms(secret: str) -> list[_Form]:
    """Every way the secret is written that the redactor looks for, with its fragment length."""
    fragments = len(secret) >= FRAGMENTS_FROM
    piece = FRAGMENT if fragments else None
    texts = {secret, secret[::-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             json.dumps(secret)[1:-1].replace("/", "\\/"), html.escape(secret)}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret), quote(quote(secret, safe=""), safe="")):
        texts.update({encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)})
    forms = {_Form(t, piece) for t in texts if len(t) >= MIN_SECRET}
    raw = secret.encode("utf-8")
    hexed = raw.hex()
    forms.update({_Form(hexed, 2 * piece if piece else None), _Form(hexed.upper(), 2 * piece if piece else None)})
    b64_piece = -(-4 * piece // 3) if piece else None
    for shift in range(3):
        # The secret after `shift` other bytes: only the characters that depend on nothing else.
        encoded = base64.b64encode(bytes(shift) + raw).decode()
        first, last = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        core = encoded[first:last] if shift else encoded  # unshifted: keep the tail and padding too
        for text in {core, core.translate(str.maketrans("+/", "-_"))}:
            if len(text) >= MIN_SECRET:
                forms.add(_Form(text, b64_piece))
            if not shift and text.endswith("="):
                forms.add(_Form(text.rstrip("="), b64_piece))
    return sorted(forms, key=lambda f: f.text)


def _trie_regex(pieces: Iterable[str]) -> str:
    """One alternation of literal strings, shared prefixes factored out so a scan stays cheap."""
    trie: dict[str, Any] = {}
    for word in pieces:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return body + "?" if len(branches) == 1 and len(body) == 1 else f"(?:{body})?"
        return body

    return build(trie)


# ---- the process-wide registry ----------------------------------------------------------------------

SECRETS = Redactor()


def register_secret(value: str | None, source: str = "") -> None:
    """Called by whatever loads a secret (a config, a plugin, a store), as it reads the value."""
    SECRETS.register(value, source)


def redact(text: str) -> str:
    return SECRETS.redact(text)


def redact_value(value: Any) -> Any:
    return SECRETS.redact_value(value)
