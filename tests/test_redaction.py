"""The one redactor (R10): every encoding and every long enough piece of a registered secret is blanked,
ordinary text is left alone, and each place that loads a secret registers it."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from plugdeck.redaction import FRAGMENT, MARK, MIN_SECRET, SECRETS, Redactor, redact, redact_value

SECRET = "Zk4/q+Vt9=Lm2_Xp7-Rb3"  # shaped like a real key: every 8-character run mixes kinds of character


def blanked(redactor: Redactor, leak: str, secret: str = SECRET) -> str:
    """What is left of `leak`, placed in text, once redacted; asserts no 8-run of the secret survives."""
    out = redactor.redact(f"before {leak} after")
    assert out.startswith("before ") and out.endswith(" after"), out
    for i in range(len(secret) - FRAGMENT + 1):
        assert secret[i:i + FRAGMENT] not in out
    return out


@pytest.fixture
def redactor():
    return Redactor([SECRET])


@pytest.mark.parametrize("encode", [
    lambda s: s,
    lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    lambda s: s.encode().hex(),
    lambda s: s.encode().hex().upper(),
    lambda s: quote(s, safe=""),
    lambda s: quote(s, safe="").lower(),
    lambda s: quote(s),
    lambda s: quote_plus(s + " x"),
    lambda s: quote(quote(s, safe=""), safe=""),
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s).replace("/", "\\/")[1:-1],
    lambda s: html.escape(s),
    lambda s: s[::-1],
], ids=["plain", "base64", "base64-unpadded", "base64url", "base64url-unpadded", "hex", "HEX", "url", "url-lower",
        "url-keep-slash", "form-plus", "url-twice", "json", "json-slash", "html", "reversed"])
def test_every_encoding_of_the_whole_secret_is_blanked(redactor, encode):
    leak = encode(SECRET)
    out = blanked(redactor, leak)
    assert leak not in out and MARK in out


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:", b'{"a":1,"token":"'])
def test_a_secret_inside_a_longer_base64_blob_is_found_at_every_alignment(redactor, prefix):
    blob = base64.b64encode(prefix + SECRET.encode() + b'", "more": "data"}').decode()
    out = blanked(redactor, blob)
    assert MARK in out
    for alphabet in (blob, blob.translate(str.maketrans("+/", "-_"))):
        assert MARK in redactor.redact(alphabet)


def test_every_piece_of_eight_or_more_characters_is_blanked_and_grown_to_its_full_run(redactor):
    for size in range(FRAGMENT, len(SECRET) + 1):
        for start in range(len(SECRET) - size + 1):
            piece = SECRET[start:start + size]
            assert redactor.redact(f"key ...{piece}...") == f"key ...{MARK}...", piece
    # The halves of a split secret, each on its own.
    half = len(SECRET) // 2
    assert redactor.redact(f"{SECRET[:half]} and {SECRET[half:]}") == f"{MARK} and {MARK}"
    # Pieces of the hex and base64 forms too.
    hexed, b64 = SECRET.encode().hex(), base64.b64encode(SECRET.encode()).decode()
    assert MARK in redactor.redact("id " + hexed[6:6 + 2 * FRAGMENT]) and MARK in redactor.redact("id " + b64[4:16])


def test_a_piece_shorter_than_the_fragment_length_stays(redactor):
    short = SECRET[3:3 + FRAGMENT - 1]
    assert redactor.redact(f"ends in {short}") == f"ends in {short}"


def test_short_secrets_match_only_whole_and_tiny_values_are_no_secrets():
    short = "pa:ss w0rd"  # under FRAGMENTS_FROM: whole only, in every encoding
    r = Redactor([short, "12345"])
    assert len(r) == 1 and len("12345") < MIN_SECRET
    assert r.redact(f"x {short} y") == f"x {MARK} y"
    assert MARK in r.redact(base64.b64encode(b"ada:" + short.encode()).decode())
    assert MARK in r.redact(quote(short, safe="")) and MARK in r.redact(short.encode().hex())
    assert r.redact("pa:ss w0 and 12345") == "pa:ss w0 and 12345"


def test_words_of_a_pass_phrase_are_not_blanked_but_the_phrase_is():
    phrase = "correcthorsebatterystaple"
    r = Redactor([phrase])
    assert r.redact("a horse with a battery") == "a horse with a battery"
    assert r.redact("staplebattery correcthorse") == "staplebattery correcthorse"  # one kind of character only
    assert r.redact(f"the phrase is {phrase}!") == f"the phrase is {MARK}!"


def test_ordinary_text_is_left_alone_with_many_secrets_registered():
    import secrets

    r = Redactor([secrets.token_urlsafe(24) for _ in range(50)])
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert r.redact(text) == text


@pytest.mark.parametrize("text, expected", [
    ("Authorization: Bearer abcDEF0123456789xyz", f"Authorization: Bearer {MARK}"),
    ("key sk-proj-AbCdEf0123456789GhIj", f"key {MARK}"),
    ("pdk_0123456789_abcdefghijABCDEFGHIJ0123 is the key", f"{MARK} is the key"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIz", f"jwt {MARK}"),
    ('{"api_key": "a1b2c3d4e5"}', f'{{"api_key": "{MARK}"}}'),
    ("x-api-key: 'q1w2e3r4t5'", f"x-api-key: '{MARK}'"),
    ("GET /v1?access_token=Zz9Yy8Xx7&x=1", f"GET /v1?access_token={MARK}&x=1"),
    ("postgresql://app:hunter2@db/shop", "postgresql://app:***@db/shop"),
    ("the secret: ingredient is love", "the secret: ingredient is love"),  # prose stays prose
    ("password: short", "password: short"),
    ("password = os.environ.get(name)", "password = os.environ.get(name)"),  # code stays code
    ('WWW-Authenticate: Bearer realm="api", error="invalid_token"', 'WWW-Authenticate: Bearer realm="api", error="invalid_token"'),
])
def test_things_shaped_like_keys_are_blanked_whoever_they_belong_to(text, expected):
    assert Redactor().redact(text) == expected


def test_values_are_walked_and_untouched_values_come_back_as_they_were(redactor):
    clean = {"rows": [{"id": 1, "name": "Ada"}], "ok": True, "n": 2.5, "none": None}
    assert redactor.redact_value(clean) is clean
    dirty = {"rows": [{"id": 1, "token": f"Bearer-less {SECRET}"}], f"key {SECRET}": ("a", SECRET)}
    assert redactor.redact_value(dirty) == {"rows": [{"id": 1, "token": f"Bearer-less {MARK}"}],
                                            f"key {MARK}": ["a", MARK]}

    class Answer:
        def __str__(self):
            return f"Answer({SECRET})"

    assert redactor.redact_value(Answer()) == f"Answer({MARK})"
    kept = Path("/tmp")
    assert redactor.redact_value(kept) is kept


def test_the_process_wide_registry_forgets_on_request():
    canary = "Rg7-unit-Canary/9xQ2=kL"
    assert redact(canary) == canary
    SECRETS.register(canary, "test")
    try:
        assert redact(f"[{canary}]") == f"[{MARK}]" and redact_value({"a": canary}) == {"a": MARK}
        assert "test" in SECRETS.sources()
    finally:
        SECRETS.forget(canary)
    assert redact(canary) == canary


# ---- each place that loads a secret registers it ----------------------------------------------------


@pytest.fixture
def canary(monkeypatch):
    value = "Cn4ry-Reg/7qZ+x2=Wm9"
    monkeypatch.setenv("R10_CANARY", value)
    yield value
    SECRETS.forget(value)


def test_a_model_profile_registers_its_key_when_it_reads_it(canary):
    from plugdeck.config import ModelProfile

    ModelProfile(name="m", base_url="http://127.0.0.1:9/v1", model="m", api_key_env="R10_CANARY").api_key()
    assert redact(canary) == MARK


def test_the_openai_client_registers_its_key_and_key_headers(canary):
    from plugdeck.models.openai import OpenAIModel

    other = "Hdr-7Qz/x9+Lm2=Kp4Vb"
    OpenAIModel("m", "http://127.0.0.1:9/v1", api_key=canary, headers={"X-Api-Key": other})
    try:
        assert redact(f"{canary} {other}") == f"{MARK} {MARK}"
    finally:
        SECRETS.forget(other)


def test_an_mcp_server_registers_the_values_it_is_given(canary):
    from plugdeck.plugins.mcp.client import ServerSpec

    ServerSpec("s", command=["true"], env={"TOKEN": "R10_CANARY"}).secrets()
    assert redact(base64.b64encode(canary.encode()).decode()) == MARK


async def test_openapi_registers_credentials_but_not_user_names(canary, monkeypatch):
    from plugdeck.plugins.openapi.auth import Authenticator

    monkeypatch.setenv("R10_USER", "administrator")
    schemes = {"basic": {"type": "http", "scheme": "basic"}}
    auth = Authenticator(schemes, {"basic": {"username_env": "R10_USER", "password_env": "R10_CANARY"}},
                         "http://127.0.0.1:9", "test")
    creds = await auth.credentials([{"basic": []}], post_form=None)
    assert creds.headers["Authorization"].startswith("Basic ")
    shown = redact(creds.headers["Authorization"])
    assert shown.startswith(f"Basic {MARK}") and creds.headers["Authorization"][6:16] not in shown
    assert redact("administrator") == "administrator" and redact(canary) == MARK
    # One variable holding user:password: the password is the secret, the user name stays readable.
    monkeypatch.setenv("R10_PAIR", "admin2026:Pw7-Pair/Zx9+Q")
    pair = Authenticator(schemes, {"basic": {"env": "R10_PAIR"}}, "http://127.0.0.1:9", "test")
    await pair.credentials([{"basic": []}], post_form=None)
    try:
        assert redact("hello admin2026, Pw7-Pair/Zx9+Q") == f"hello admin2026, {MARK}"
    finally:
        SECRETS.forget("Pw7-Pair/Zx9+Q")


def test_sql_database_passwords_are_registered(canary):
    from plugdeck.plugins.sql.connect import open_database

    db = open_database("postgresql://reader@127.0.0.1:9/shop", password=canary)
    assert db.scrub(f"connection failed for {quote(canary, safe='')}") == f"connection failed for {MARK}"


def test_knowledge_store_passwords_are_registered_when_connecting(canary):
    from plugdeck.plugins.knowledge.pgstore import PostgresLocation

    location = PostgresLocation("postgresql://postgres@127.0.0.1:5432/test", "kb_r10", "R10_CANARY")
    location.connect().close()  # the server trusts local connections; the password is read all the same
    assert redact(canary) == MARK


def test_run_store_urls_hide_their_password_everywhere():
    from plugdeck.redaction import redact_url

    password = "Rs7/pass+Word9=Zq"
    try:
        assert redact_url(f"postgresql://app:{quote(password, safe='')}@db/runs") == "postgresql://app:***@db/runs"
        assert redact(f"the password is {password}") == f"the password is {MARK}"
    finally:
        SECRETS.forget(password)


def test_cli_errors_are_redacted(canary, monkeypatch, capsys):
    from plugdeck.cli import main as cli

    SECRETS.register(canary)

    def failing():
        raise RuntimeError(f"upstream said {base64.b64encode(canary.encode()).decode()}")

    monkeypatch.setattr(cli, "app", failing)
    monkeypatch.setattr(cli, "_add_installed_commands", lambda argv: None)
    with pytest.raises(SystemExit):
        cli.main()
    err = capsys.readouterr().err
    assert "upstream said [redacted]" in err and canary not in err
