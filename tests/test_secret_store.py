"""Secrets by name in the keyring (plugdeck.secret_store), on an in-memory backend: never the user's."""

from __future__ import annotations

import pytest

from plugdeck import secret_store
from plugdeck.errors import UserError
from plugdeck.redaction import redact

pytest.importorskip("keyring")

KEY = "sk-test-Zq81fPbX4mW2kR7tY0uV"


def test_set_get_list_delete(keyring_backend):
    assert secret_store.get_secret("openai") is None and secret_store.list_secrets() == []
    secret_store.set_secret("openai", KEY)
    secret_store.set_secret("groq", "gsk-other-9Hq2LmP0aZ")
    secret_store.set_secret("openai", KEY)  # again: replaced, listed once
    assert secret_store.get_secret("openai") == KEY
    assert secret_store.list_secrets() == ["groq", "openai"]
    assert ("plugdeck", "openai") in keyring_backend.entries  # in the keyring, under plugdeck's service
    assert secret_store.delete_secret("openai") is True
    assert secret_store.delete_secret("openai") is False
    assert secret_store.get_secret("openai") is None and secret_store.list_secrets() == ["groq"]


def test_services_are_kept_apart(keyring_backend):
    secret_store.set_secret("github", "tok-oauth-Hx72LpQ", service="plugdeck-oauth")
    assert secret_store.get_secret("github") is None and secret_store.list_secrets() == []
    assert secret_store.list_secrets(service="plugdeck-oauth") == ["github"]


def test_a_stored_key_is_redacted_once_read(keyring_backend):
    keyring_backend.set_password("plugdeck", "pasted", "sk-pasted-Wn3kT8yR1qZ5")  # stored by another process
    assert "sk-pasted-Wn3kT8yR1qZ5" in f"echo {secret_store.get_secret('pasted')}"
    assert "Wn3kT8yR1qZ5" not in redact("the key is sk-pasted-Wn3kT8yR1qZ5")


def test_bad_names_and_empty_values_are_refused(keyring_backend):
    with pytest.raises(secret_store.SecretStoreError, match="needs a name"):
        secret_store.set_secret("  ", KEY)
    with pytest.raises(secret_store.SecretStoreError, match="empty"):
        secret_store.set_secret("openai", " ")
    assert keyring_backend.entries == {}


def test_no_keyring_backend_names_what_to_do():
    from keyring.backends import fail

    from memory_keyring import use_keyring

    with use_keyring(fail.Keyring()):
        with pytest.raises(UserError) as caught:
            secret_store.set_secret("openai", KEY)
    message = str(caught.value)
    assert "no keyring" in message and "OPENAI_API_KEY" in message and "pip install keyrings.alt" in message
    assert KEY not in message
