"""R10 at the last door: whatever a conversation holds (a key the person pasted, history a client
sent), a secret plugdeck holds is blanked in the request that goes to the model server."""

from __future__ import annotations

import base64

from mock_openai import MockOpenAI

from plugdeck.models.openai import OpenAIModel
from plugdeck.redaction import SECRETS, register_secret

SECRET = "Zq8-wT4p-Lm2x-9RkV"


async def test_a_held_secret_never_reaches_the_model_server():
    register_secret(SECRET, "test")
    try:
        history = [
            {"role": "user", "content": f"my key is {SECRET}"},
            {"role": "assistant", "content": f"noted: {base64.b64encode(SECRET.encode()).decode()}"},
            {"role": "user", "content": f"and its first half was {SECRET[:9]}; what is 2+2?"},
        ]
        with MockOpenAI(["4"]) as mock:
            model = OpenAIModel("mock-model", mock.base_url, max_retries=0)
            [item async for item in model.stream(history, [])]
            await model.aclose()
        sent = str(mock.requests[0]["messages"])
        assert SECRET not in sent and SECRET[:9] not in sent and "2+2" in sent
        assert base64.b64encode(SECRET.encode()).decode() not in sent
        assert history[0]["content"].endswith(SECRET)  # the conversation itself is not changed
    finally:
        SECRETS.forget(SECRET)
