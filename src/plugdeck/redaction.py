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

Speed: each secret's forms are cut once into seeds (fragment/2 characters long, placed so that any
run of a fragment's length holds a whole seed, starting where possible at a capital or a rare symbol,
which ordinary text has few of, so the scan skips most positions at once); the seeds of all secrets form one compiled regular expression
shaped as a trie, so a text is scanned once whatever the number of secrets, and a hit is grown
along its form to the whole run. Long texts seen lately are remembered (a run's messages come back
in every model call). bench/redaction.py measures it.
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
REMEMBER_FROM, REMEMBERED = 512, 256  # texts this long are remembered, this many at a time

# Things shaped like credentials, redacted whether or not anyone registered them. Each runs only on
# texts holding one of its telltale words (checked on the lower-cased text, far cheaper than a scan).
_VALUE = r"[^\s\"'`,;&<>(){}\[\]]"
_SHAPES: list[tuple[tuple[str, ...], re.Pattern[str], Any]] = [
    (("bearer", "basic"), re.compile(r"\b((?i:bearer|basic))\s+(?![A-Za-z_]+=\")[A-Za-z0-9._~+/=-]{8,}"),
     rf"\1 {MARK}"),  # not realm="..."
    (("sk-", "pk-", "rk-"), re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), MARK),
    (("pdk_",), re.compile(r"\bpdk_[0-9a-f]{10}_[A-Za-z0-9_-]{20,}"), MARK),  # plugdeck server API keys
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MARK),  # JWTs
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "akia", "xox"),
     re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,})\b"), MARK),
    # api_key=..., "password": "...": a value with letters and digits in it, as keys have, so that prose
    # ("the secret: ingredient") and code ("password = os.environ.get(...)") stay as they are.
    (("key", "token", "secret", "passw", "authorization"),
     re.compile(r"\b((?i:(?:x-)?api[_-]?key|access[_-]?token|client[_-]?secret|secret|password|passwd|authorization))"
                rf"([\"']?[ \t]*[:=][ \t]*[\"']?)(?={_VALUE}*\d)(?={_VALUE}*[A-Za-z]){_VALUE}{{6,}}"),
     rf"\1\2{MARK}"),
    (("://",), re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+):[^@/\s]+@"),
     r"\1:***@"),  # scheme://user:password@, hidden as URLs conventionally are (libpq, SQLAlchemy)
]


@dataclass(frozen=True)
class _Form:
    text: str  # one way the secret can appear
    fragment: int | None  # the shortest run of it that counts as a leak; None: only the whole form
    words: bool = False  # the secret's own characters: a run of one kind only may be an ordinary word

    def seeds(self) -> list[int]:
        """Where seeds (of `seed_size`) are cut, so that every run of `fragment` holds one whole. Where
        there is a choice a seed starts at a character ordinary text has few of: a scan only stops there."""
        if not self.fragment:
            return [0]
        size, starts = self.seed_size, []
        for window in range(len(self.text) - self.fragment + 1):
            if starts and starts[-1] >= window:
                continue  # a seed already lies within this run
            choices = range(window, window + self.fragment - size + 1)
            starts.append(min(choices, key=lambda i: (_commonness(self.text[i]), -i)))
        return starts

    @property
    def seed_size(self) -> int:
        return (self.fragment + 1) // 2 if self.fragment else len(self.text)

    def accepts(self, run: str) -> bool:
        if len(run) == len(self.text):
            return True
        return bool(self.fragment) and len(run) >= self.fragment and (not self.words or _mixed(run))


class _Matcher:
    """All registered secrets' forms, cut into seeds, as one regular expression shaped as a trie."""

    def __init__(self, secrets: Iterable[str]):
        self.places: dict[str, list[tuple[_Form, int]]] = {}  # seed -> (form, where the seed is in it)
        for secret in secrets:
            for form in _forms(secret):
                for offset in form.seeds():
                    self.places.setdefault(form.text[offset:offset + form.seed_size], []).append((form, offset))
        self.lengths = sorted({len(seed) for seed in self.places})
        self.pattern = re.compile(_trie_regex(self.places)) if self.places else None

    def blank(self, text: str) -> str:
        """Each run of a secret's form that a seed leads to, grown to its full extent, replaced."""
        if self.pattern is None:
            return text
        out: list[str] = []
        done = position = 0  # text before `done` is written out already
        while (hit := self.pattern.search(text, position)) is not None:
            span = self._grow(text, hit.start(), hit.group(), done)
            position = hit.start() + 1
            if span is None:
                continue
            # Seeds of other forms inside the run may grow it further (JSON's "\/" against a plain "/").
            while (more := self.pattern.search(text, position, span[1])) is not None:
                grown = self._grow(text, more.start(), more.group(), done)
                if grown is not None:
                    span = (min(span[0], grown[0]), max(span[1], grown[1]))
                position = more.start() + 1
            out += [text[done:span[0]], MARK]
            done = position = span[1]
        return "".join([*out, text[done:]]) if out else text

    def _grow(self, text: str, at: int, hit: str, floor: int) -> tuple[int, int] | None:
        """The longest run of a form around the seed at `at` that counts as a leak. The expression
        matched the longest seed there; the shorter seeds it starts with are tried too."""
        best: tuple[int, int] | None = None
        for size in self.lengths:
            if size > len(hit):
                break
            for form, offset in self.places.get(hit[:size], ()):
                start, i = at, offset
                while i > 0 and start > floor and text[start - 1] == form.text[i - 1]:
                    start, i = start - 1, i - 1
                end, j = at + size, offset + size
                while j < len(form.text) and end < len(text) and text[end] == form.text[j]:
                    end, j = end + 1, j + 1
                if form.accepts(text[start:end]) and (best is None or end - start > best[1] - best[0]):
                    best = (start, end)
        return best


class Redactor:
    """Secrets registered once; every text scanned for all of them in one pass."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}  # value -> where it came from (for `sources`)
        self._matcher: _Matcher | None = None  # built at the first scan after a change
        self._seen: dict[str, str] = {}  # long texts redacted lately: a run's messages recur in every event
        for secret in secrets:
            self.register(secret)

    # ---- registering ------------------------------------------------------------------------------

    def register(self, value: str | None, source: str = "") -> None:
        """Treat `value` as a secret from now on (a no-op for values too short to be one)."""
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET:
            return
        with self._lock:
            if value not in self._secrets:
                self._secrets[value] = source
                self._matcher = None

    def forget(self, value: str) -> None:
        with self._lock:
            if self._secrets.pop(value, None) is not None:
                self._matcher = None

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
        matcher = self._matcher or self._build()
        remember = len(text) >= REMEMBER_FROM
        if remember and (known := self._seen.get(text)) is not None:
            return known
        cleaned = _shaped(matcher.blank(text))
        if remember and matcher is self._matcher:  # not when the secrets changed meanwhile
            if len(self._seen) >= REMEMBERED:
                self._seen.clear()
            self._seen[text] = cleaned
        return cleaned

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

    def _build(self) -> _Matcher:
        with self._lock:
            if self._matcher is None:
                self._seen = {}
                self._matcher = _Matcher(list(self._secrets))
            return self._matcher


def _shaped(text: str) -> str:
    """Key shapes blanked."""
    lowered = text.lower()
    for words, pattern, replacement in _SHAPES:
        if any(word in lowered for word in words):
            text = pattern.sub(replacement, text)
    return text


def _commonness(char: str) -> int:
    """0 for capitals and rare symbols, 1 for digits, 2 for what fills ordinary text and JSON."""
    if char.isupper() or not (char.isalnum() or char in _ORDINARY):
        return 0
    return 1 if char.isdigit() else 2


_ORDINARY = frozenset(" \t\n\"':,.;{}[]()-_/")


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
    forms = {_Form(t, piece, words=True) for t in texts if len(t) >= MIN_SECRET}
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


def redact_url(url: str, source: str = "database URL") -> str:
    """A connection URL without its password: the password is registered as a secret (so no later
    message or log shows it either), then blanked here."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        register_secret(unquote(password), source)
    return redact(url)


def is_postgres(target: object) -> bool:
    """Whether a store target names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))

