"""Issue 14 item 7: warm reuse (or a fresh sandbox per call), a concurrency limit per plugin, a
circuit breaker after repeated kills; and the limits a manifest may ask for, cut to the ceiling."""

import asyncio

import pytest

from plugdeck.plugins.sandbox.limits import LimitError, Limits, plugin_limits
from plugdeck.plugins.sandbox.plugin import sandboxed_plugin
from plugdeck.plugins.sandbox.settings import SandboxSettings
from plugdeck.tools import ToolError

BUSY = '''
import asyncio
from plugdeck import Plugin, tool

calls = 0
inside = peak = 0


@tool
def count() -> int:
    """How many calls this process has served."""
    global calls
    calls += 1
    return calls


@tool
async def hold(seconds: float) -> int:
    """Stay a while; return the most calls seen inside at once."""
    global inside, peak
    inside += 1
    peak = max(peak, inside)
    await asyncio.sleep(seconds)
    inside -= 1
    return peak


@tool(timeout=1)
def hang() -> str:
    """Never answer."""
    import time
    time.sleep(3600)


plugin = Plugin(name="busy", tools=[count, hold, hang])
'''


@pytest.fixture
def busy(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "busy_plugin.py").write_text(BUSY)
    def make(**settings):
        plugin = sandboxed_plugin("busy_plugin:plugin", "busy", settings=SandboxSettings(**settings),
                                  paths=[str(site)])
        return plugin

    return make


async def _close(*plugins):
    for plugin in plugins:
        await plugin.close()


async def test_a_warm_sandbox_is_reused_and_a_cold_one_is_fresh_per_call(busy):
    warm, cold = busy(warm=True), busy(warm=False)
    try:
        await warm.runtime.start()  # started ahead of the first call: that call is served by it
        assert warm.runtime.connection.starts == 1
        assert [await warm.tool("count").call({}) for _ in range(3)] == [1, 2, 3]
        assert warm.runtime.connection.starts == 1
        assert [await cold.tool("count").call({}) for _ in range(2)] == [1, 1]
    finally:
        await _close(warm, cold)


async def test_a_plugin_whose_scratch_is_per_call_gets_a_fresh_sandbox_each_time(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "scratchy.py").write_text(BUSY.replace('plugin = Plugin(name="busy", tools=[count, hold, hang])',
                                                   'plugin = Plugin(name="scratchy", tools=[count], '
                                                   'needs={"scratch": "call"})'))
    plugin = sandboxed_plugin("scratchy:plugin", "scratchy", settings=SandboxSettings(), paths=[str(site)])
    try:
        assert [await plugin.tool("count").call({}) for _ in range(2)] == [1, 1]
    finally:
        await _close(plugin)


@pytest.mark.parametrize("limit", [2, 4])
async def test_calls_run_at_most_concurrency_at_once(busy, limit):
    plugin = busy(concurrency=limit)
    try:
        await plugin.tool("count").call({})  # started
        peaks = await asyncio.gather(*[plugin.tool("hold").call({"seconds": 1.0}) for _ in range(4)])
    finally:
        await _close(plugin)
    assert max(peaks) == limit


async def test_repeated_kills_open_the_circuit(busy):
    plugin = busy(breaker_failures=2, breaker_cooldown_s=60)
    try:
        for _ in range(2):
            with pytest.raises(ToolError) as killed:
                await plugin.tool("hang").call({})
            assert killed.value.kind == "timeout"
        with pytest.raises(ToolError) as refused:
            await plugin.tool("count").call({})
    finally:
        await _close(plugin)
    assert refused.value.kind == "circuit_open" and "refused for" in refused.value.message
    assert [e["kind"] for e in plugin.runtime.events] == ["killed", "killed", "circuit_open"]


def test_a_manifest_gets_its_limits_cut_to_the_ceiling():
    ceiling = Limits(memory_mb=512, cpu_s=10)
    limits = plugin_limits({"limits": {"memory_mb": 4096, "cpu_s": 2}}, ceiling)
    assert (limits.memory_mb, limits.cpu_s, limits.processes) == (512, 2, Limits().processes)
    assert plugin_limits({}, ceiling).memory_mb == 512


@pytest.mark.parametrize("asked, message", [
    ({"memory_mb": -1}, "needs.limits.memory_mb must be a positive whole number"),
    ({"cpu_s": "lots"}, "needs.limits.cpu_s must be a positive whole number"),
    ({"gpus": 1}, "unknown limit(s) gpus"),
    ("big", "must be a table of limits"),
])
def test_bad_limits_are_refused_with_the_field_named(asked, message):
    with pytest.raises(LimitError) as refused:
        plugin_limits({"limits": asked}, Limits())
    assert message in str(refused.value)


def test_the_operators_settings_file(tmp_path):
    (tmp_path / "sandbox.toml").write_text(
        '[ceiling]\nmemory_mb = 256\n[lifecycle]\nconcurrency = 2\n'
        '[plugins.weather]\nsecrets = { API_KEY = "WEATHER_KEY" }\nallow_private = true\n')
    settings = SandboxSettings.load(tmp_path)
    assert settings.ceiling.memory_mb == 256 and settings.concurrency == 2
    assert settings.grant("weather").secrets == {"API_KEY": "WEATHER_KEY"} and settings.grant("weather").allow_private
    assert settings.grant("other").secrets == {} and not settings.grant("other").allow_private
    (tmp_path / "sandbox.toml").write_text('[plugins.weather]\nsecrets = { API_KEY = 3 }\n')
    with pytest.raises(LimitError, match="secrets must map"):
        SandboxSettings.load(tmp_path)
