"""MCP server packages: a server.json (the official MCP registry's format) imported and published, its
PyPI package installed into its own environment and started, its tools pinned as an MCP plugin; and
server.json written back. A real registry on loopback; the server's wheel comes from a local folder
(pip with --no-index), the way a team mirror would serve it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
from store_kit import RegistryThread

pytest.importorskip("tuf")
pytest.importorskip("mcp")

from plugdeck.plugins import registry as plugin_registry  # noqa: E402
from plugdeck.store import client, keys, lock  # noqa: E402
from plugdeck.store.mcp_package import MCPPackageError, build_mcp, read_server_json  # noqa: E402
from plugdeck.store.publish import Package, register, upload  # noqa: E402

SERVER = '''from mcp.server.mcpserver import MCPServer

server = MCPServer("shout")


@server.tool()
def shout(text: str) -> str:
    """Say the text louder."""
    return text.upper() + "!"


def main():
    server.run()
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "shout-mcp"
version = "1.0.0"
dependencies = ["mcp"]

[project.scripts]
shout-mcp = "shout_mcp:main"
'''

SERVER_JSON = {
    "$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
    "name": "io.github.acme/shout", "description": "Says things louder.", "version": "1.0.0",
    "packages": [{"registryType": "oci", "identifier": "docker.io/acme/shout", "version": "1.0.0",
                  "transport": {"type": "stdio"}},
                 {"registryType": "pypi", "identifier": "shout-mcp", "version": "1.0.0",
                  "transport": {"type": "stdio"}}],
}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    base = tmp_path_factory.mktemp("mcp-package")
    project = base / "project"
    (project / "shout_mcp").mkdir(parents=True)
    (project / "shout_mcp" / "__init__.py").write_text(SERVER, encoding="utf-8")
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    out = base / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(project)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (base / "server.json").write_text(json.dumps(SERVER_JSON), encoding="utf-8")
    return base


@pytest.fixture
def offline_pip(wheels, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels / "wheels"))


@pytest.fixture
def store(tmp_path):
    with RegistryThread(tmp_path / "registry") as reg:
        reg.acme = keys.generate(tmp_path / "acme.pem")
        reg.token = register(reg.url, "acme", reg.acme)
        yield reg


def install(tmp_path, store):
    home = tmp_path / "home"
    client.add_store(home, "team", store.url, client.fetch_first_root(store.url))
    return home, client.install(home, "acme/shout", store="team", consent=lambda fetched, findings: True)


def test_import_publish_install_and_call(tmp_path, wheels, offline_pip, store):
    package = build_mcp(wheels / "server.json", "acme")
    manifest = package.manifest
    assert (manifest.name, manifest.kind, manifest.plugin) == ("acme/shout", "mcp", "shout")
    assert manifest.server.model_dump() == {"registry": "pypi", "identifier": "shout-mcp", "version": "1.0.0",
                                            "transport": "stdio", "arguments": []}
    assert [(t.name, t.effect, t.description) for t in manifest.tools] == [("shout", "write", "Say the text louder.")]
    answer = upload(store.url, package, store.acme, store.token)
    assert answer["checks"]["sandbox"]["status"] == "skipped"
    exported = httpx.get(f"{store.url}/api/v1/packages/acme/shout/1.0.0/server.json").json()
    assert exported["packages"] == [{"registryType": "pypi", "identifier": "shout-mcp", "version": "1.0.0",
                                     "transport": {"type": "stdio"}}]
    assert read_server_json(json.dumps(exported))["server"] == manifest.server.model_dump()

    home, entry = install(tmp_path, store)
    assert entry["kind"] == "mcp" and entry["files"].keys() == {"server.json"}
    added = plugin_registry.configured(home)["shout"]
    assert added["kind"] == "mcp" and set(added["options"]["approved"]) == {"shout"}  # pinned
    assert added["options"]["command"][0].startswith(str(lock.package_dir(home, "acme/shout", "1.0.0") / "env"))
    plugin = plugin_registry.build("shout", added, home)
    try:
        assert asyncio.run(plugin.tool("shout").call({"text": "hello"})) == {"result": "HELLO!"}  # structured output
    finally:
        if plugin.close:
            asyncio.run(plugin.close())


def test_a_server_whose_tools_differ_from_the_manifest_is_not_installed(tmp_path, wheels, offline_pip, store):
    package = build_mcp(wheels / "server.json", "acme")
    tool = package.manifest.tools[0].model_copy(update={"description": "Whispers."})
    upload(store.url, Package(package.manifest.model_copy(update={"tools": [tool]}), package.artifact),
           store.acme, store.token)
    with pytest.raises(client.StoreError, match="not the ones published .*different: shout"):
        install(tmp_path, store)
    assert plugin_registry.configured(tmp_path / "home") == {}
    assert lock.read(tmp_path / "home")["packages"] == {}
    assert not lock.package_dir(tmp_path / "home", "acme/shout", "1.0.0").exists()


@pytest.mark.parametrize("doc, says", [
    ({"name": "x/remote", "remotes": [{"type": "streamable-http", "url": "https://x.example/mcp"}]},
     "no package plugdeck can run"),
    ({"name": "x/y", "packages": [{"registryType": "pypi", "identifier": "y", "version": "1.0.0",
                                   "transport": {"type": "stdio"},
                                   "packageArguments": [{"type": "positional", "valueHint": "path"}]}]},
     "has no value"),
    ("[1, 2]", "has no server name"),
    ("{not json", "not JSON"),
])
def test_server_json_that_cannot_be_a_package_is_refused(doc, says):
    with pytest.raises(MCPPackageError, match=says):
        read_server_json(doc if isinstance(doc, str) else json.dumps(doc))


def test_server_json_arguments_secrets_and_the_registry_api_form():
    doc = {"server": {"name": "io.github.acme/notes", "version": "2.1.0", "packages": [
        {"registryType": "npm", "identifier": "@acme/notes-mcp", "version": "2.1.0", "transport": {"type": "stdio"},
         "packageArguments": [{"type": "named", "name": "--root", "value": "/srv/notes"},
                              {"type": "positional", "value": "serve"}],
         "environmentVariables": [{"name": "NOTES_TOKEN", "isSecret": True}]}]}}
    found = read_server_json(json.dumps(doc))
    assert found["server"] == {"registry": "npm", "identifier": "@acme/notes-mcp", "version": "2.1.0",
                               "transport": "stdio", "arguments": ["--root", "/srv/notes", "serve"]}
    assert found["secrets"] == ["NOTES_TOKEN"]


def test_the_import_mcp_command(tmp_path, wheels, offline_pip, store):
    import os

    from store_kit import plugdeck

    env = {**os.environ, "PLUGDECK_HOME": str(tmp_path / "cli-home"), "HOME": str(tmp_path / "user")}
    assert plugdeck(env, "store", "keygen", "tools").returncode == 0
    done = plugdeck(env, "store", "import-mcp", str(wheels / "server.json"), "--store", store.url, "--key", "tools",
                    "--name", "loud")
    assert done.returncode == 0, done.stderr
    assert "published tools/loud 1.0.0 (1 tools)" in done.stdout
    missing = plugdeck(env, "store", "import-mcp", str(tmp_path / "absent.json"), "--store", store.url, "--key", "tools")
    assert missing.returncode == 1 and "absent.json" in missing.stderr
