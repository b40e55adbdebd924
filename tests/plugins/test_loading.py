"""Third-party plugins are found through the plugdeck.plugins entry-point group, like built-ins."""

import json
import os
import subprocess
import sys

from fake_dist import install_fake_distribution


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


def test_plugins_new_makes_a_package_that_installs_and_appears(tmp_path):
    env = {**os.environ, "PLUGDECK_HOME": str(tmp_path / "data")}
    cli = [sys.executable, "-m", "plugdeck.cli.main"]
    made = subprocess.run([*cli, "plugins", "new", "greeter", "--dir", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    package = tmp_path / "plugdeck-greeter"
    site = tmp_path / "site"
    # A real pip install (into its own folder, so the shared environment stays as it was).
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(package)], check=True, capture_output=True, timeout=300)
    env["PYTHONPATH"] = str(site)
    listed = subprocess.run([*cli, "plugins", "--json"], env=env, capture_output=True, text=True, timeout=60)
    greeter = next(p for p in json.loads(listed.stdout) if p["name"] == "greeter")
    assert greeter["origin"] == "third-party" and greeter["tools"][0]["name"] == "greet"
    tested = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                            env=env, capture_output=True, text=True, timeout=120, cwd=package)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    again = subprocess.run([*cli, "plugins", "new", "greeter", "--dir", str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr
