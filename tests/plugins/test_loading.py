"""Third-party plugins are found through the plugdeck.plugins entry-point group, like built-ins."""

import json
import os
import subprocess
import sys
import textwrap


def install_fake_distribution(site, name, entry_points, modules):
    """What pip leaves behind for a package: its modules and a .dist-info with entry_points.txt."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[plugdeck.plugins]\n{lines}\n")


def test_third_party_plugins_load_and_broken_ones_are_skipped(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_fake_distribution(site, "plugdeck_weather", {"weather": "plugdeck_weather:plugin",
                                                        "broken": "plugdeck_broken:plugin"}, {
        "plugdeck_weather": '''
            from plugdeck import Plugin, tool

            @tool
            def forecast(city: str, days: int = 3) -> dict:
                """Weather forecast for a city.

                Args:
                    city: The city name.
                """
                return {"city": city, "days": days, "sky": "clear"}

            plugin = Plugin(name="weather", version="1.2.0", description="Forecasts", tools=[forecast])
        ''',
        "plugdeck_broken": "raise ImportError('this plugin needs a library that is not installed')\n",
    })
    env = {**os.environ, "PYTHONPATH": str(site), "PLUGDECK_HOME": str(tmp_path / "data")}
    listed = subprocess.run([sys.executable, "-m", "plugdeck.cli.main", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert {"calculator", "weather"} <= plugins.keys() and "broken" not in plugins
    assert plugins["weather"]["tools"][0]["parameters"]["properties"]["city"]["description"] == "The city name."
    assert "plugin 'broken' was skipped" in listed.stderr and "not installed" in listed.stderr
    call = [sys.executable, "-m", "plugdeck.cli.main", "tools", "call", "weather.forecast", '{"city": "Oslo"}', "--json"]
    # Installed is not trusted: a third-party plugin runs only once the policy allows it.
    denied = subprocess.run(call, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "denied" in denied.stderr and 'allow = ["weather.*"]' in denied.stderr
    (tmp_path / "plugdeck.toml").write_text('[policy]\nallow = ["weather.*"]\n')
    called = subprocess.run(call, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert json.loads(called.stdout) == {"city": "Oslo", "days": 3, "sky": "clear"}
