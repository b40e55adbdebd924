"""Fallback chains and cooldown (R29), against real mock servers on loopback."""

from __future__ import annotations

import pytest
from mock_openai import MockOpenAI

from plugdeck import Agent
from plugdeck.config import ConfigError, load_config
from plugdeck.events import ModelCalled
from plugdeck.models import fallback
from plugdeck.models.base import ModelError, ModelResponse
from plugdeck.models.fallback import FallbackModel
from plugdeck.models.openai import OpenAIModel
from plugdeck.models.profiles import model_for

QUESTION = [{"role": "user", "content": "Hello?"}]
TOO_LONG = {"fault": "400", "message": "This model's maximum context length is 8192 tokens, you asked for 9000"}


class Clock:
    """A clock the test moves by hand, so cooldowns are tested without waiting."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_health():
    fallback._HEALTH.clear()
    yield
    fallback._HEALTH.clear()


def deployment(server: MockOpenAI, name: str, prices=(0.0, 0.0)) -> OpenAIModel:
    model = OpenAIModel(name, server.base_url, max_retries=0)
    model.prices = prices
    return model


async def answer(model) -> ModelResponse:
    items = [item async for item in model.stream(QUESTION, [])]
    return items[-1]


async def test_a_failing_deployment_falls_back_then_cools_down_and_is_probed_once():
    clock = Clock()
    with MockOpenAI(default={"fault": "500", "message": "overloaded"}) as a, MockOpenAI(default="from B") as b:
        chain = FallbackModel([(deployment(a, "a"), None), (deployment(b, "b"), None)], name="local",
                              cooldown_after=2, window=60, cooldown=30, clock=clock)
        first = await answer(chain)
        assert first.text == "from B" and first.served_by == "b"
        assert "a:" in first.fallbacks[0] and "HTTP 500" in first.fallbacks[0]
        await answer(chain)  # the second failure within the window: A cools down
        assert len(a.requests) == 2
        for _ in range(3):
            clock.now += 5
            response = await answer(chain)
            assert response.served_by == "b" and "cooling down" in response.fallbacks[0]
        assert len(a.requests) == 2  # no request while it cools down

        clock.now += 30  # the cooldown is over: one probe, which fails, so it cools down again
        await answer(chain)
        await answer(chain)
        assert len(a.requests) == 3

        a.default = "from A"  # A recovers; after the next cooldown the probe brings it back
        clock.now += 31
        assert (await answer(chain)).served_by == "a"
        assert (await answer(chain)).served_by == "a"
        assert len(a.requests) == 5 and len(b.requests) == 7
        await chain.aclose()


async def test_a_context_length_error_falls_back_only_to_larger_models():
    with MockOpenAI(default=TOO_LONG) as small, MockOpenAI(default="smaller") as smaller, \
            MockOpenAI(default="larger") as larger:
        chain = FallbackModel([(deployment(small, "small"), 8192), (deployment(smaller, "smaller"), 4096),
                               (deployment(larger, "larger"), 32768)])
        response = await answer(chain)
        assert response.text == "larger" and len(smaller.requests) == 0
        assert "context window is not larger" in response.fallbacks[1]
        # The small deployment is healthy (the request was too long, not the server broken).
        assert fallback.health_of(chain.chain[0][0]).failures == fallback.deque()
        await chain.aclose()


async def test_no_fallback_once_text_was_handed_on():
    with MockOpenAI([{"text": "a long answer that breaks off", "fault": "abort_mid"}]) as a, \
            MockOpenAI(default="from B") as b:
        chain = FallbackModel([(deployment(a, "a"), None), (deployment(b, "b"), None)])
        with pytest.raises(ModelError, match="cut off"):
            await answer(chain)
        assert len(b.requests) == 0
        await chain.aclose()


async def test_when_every_deployment_fails_the_error_names_each():
    with MockOpenAI(default={"fault": "500", "message": "gpu on fire"}) as a, \
            MockOpenAI(default={"fault": "503", "message": "maintenance"}) as b:
        chain = FallbackModel([(deployment(a, "a"), None), (deployment(b, "b"), None)])
        with pytest.raises(ModelError) as caught:
            await answer(chain)
        message = str(caught.value)
        assert "no model in the fallback chain" in message and "gpu on fire" in message and "maintenance" in message
        await chain.aclose()


async def test_the_run_records_who_answered_at_its_prices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with MockOpenAI(default={"fault": "502"}) as a, MockOpenAI(default="hello from the backup") as b:
        (tmp_path / "plugdeck.toml").write_text(f"""
model = "main"
[models.main]
base_url = "{a.base_url}"
model = "primary-model"
max_retries = 0
fallbacks = ["backup"]
input_price = 1.0
[models.backup]
base_url = "{b.base_url}"
model = "backup-model"
input_price = 1000000.0
""")
        config = load_config(cwd=tmp_path)
        model = model_for(config)
        assert isinstance(model, FallbackModel) and model.name == "main"
        run = await Agent(model, system_prompt=None).run("Hello?")
        assert run.answer == "hello from the backup"
        (called,) = [e for e in run.events if isinstance(e, ModelCalled)]
        assert called.model == "backup-model" and "HTTP 502" in called.fallbacks[0]
        assert called.cost == called.prompt_tokens * 1.0  # the backup's price, not the primary's
        await model.aclose()


def test_a_fallback_to_an_unknown_profile_is_a_clear_error(tmp_path):
    (tmp_path / "plugdeck.toml").write_text("""
[models.main]
base_url = "http://127.0.0.1:9/v1"
model = "m"
fallbacks = ["nowhere"]
""")
    with pytest.raises(ConfigError, match="no model profile named 'nowhere'"):
        model_for(load_config(cwd=tmp_path), "main")
