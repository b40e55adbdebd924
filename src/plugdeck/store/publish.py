"""`plugdeck store publish DIR`: build a package, describe its tools, sign its namespace, upload.

A Python plugin (a `plugdeck plugins new` project) is built into a wheel; its tools are read by
loading the wheel's entry point in a separate interpreter (the publisher's own code, on the
publisher's machine), so the manifest carries their full definitions. Permissions come from
`[tool.plugdeck.permissions]` in pyproject.toml.

The namespace's metadata is signed here, with the publisher's key: the registry never holds it.
"""

from __future__ import annotations

from ..errors import UserError

import hashlib
import json
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .layout import artifact_path, manifest_path
from .manifest import Manifest, ManifestError, parse_manifest

NAMESPACE_EXPIRY = timedelta(days=365)

# Run in a fresh interpreter: load the plugin from the unpacked wheel and print its tools as JSON.
_DESCRIBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from importlib import import_module
from plugdeck.plugins.base import plugin_from
module, _, attr = sys.argv[2].partition(":")
plugin = plugin_from(getattr(import_module(module), attr), name=sys.argv[3])
print(json.dumps({"name": plugin.name, "description": plugin.description, "version": plugin.version,
                  "tools": plugin.manifest()["tools"]}))
"""


class PublishError(UserError, ValueError):
    """The package cannot be built or published; the message says why."""


@dataclass
class Package:
    manifest: Manifest
    artifact: bytes


OPENAPI_SETTINGS = "plugdeck-store.toml"


def build(project: Path, namespace: str) -> Package:
    project = Path(project)
    if (project / OPENAPI_SETTINGS).exists():
        return build_openapi(project, namespace)
    if (project / "pyproject.toml").exists():
        return build_python(project, namespace)
    raise PublishError(f"{project} has neither a pyproject.toml (a plugdeck plugin project: plugdeck plugins new "
                       f"NAME makes one) nor a {OPENAPI_SETTINGS} beside an OpenAPI spec")


def openapi_options(spec: str, base_url: str | None, network: list[str]) -> dict[str, Any]:
    """The OpenAPI plugin's options for a store package. Its declared hosts are what the person consented
    to, so a private one among them (a team's internal API) is allowed, and no other."""
    allowed = [origin for host in network for origin in ((f"http://{host}", f"https://{host}") if ":" in host
                                                         else (host,))]
    return {"spec": spec, "base_url": base_url, "allow_private": allowed}


def build_openapi(project: Path, namespace: str) -> Package:
    """An OpenAPI service: its spec and plugdeck-store.toml (plugin, version, description, base_url,
    [permissions]) zipped; its tools are what plugdeck's OpenAPI plugin makes of the spec, as at run time."""
    import io
    import zipfile
    from urllib.parse import urlparse

    from ..plugins.openapi import build_plugin

    try:
        settings = tomllib.loads((project / OPENAPI_SETTINGS).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PublishError(f"{project / OPENAPI_SETTINGS} is not valid TOML: {exc}") from None
    specs = [p for p in sorted(project.iterdir()) if p.suffix in (".json", ".yaml", ".yml")]
    if len(specs) != 1:
        raise PublishError(f"{project} must hold exactly one OpenAPI spec (.json, .yaml or .yml); found {len(specs)}")
    spec, plugin_name = specs[0], str(settings.get("plugin", ""))
    base_url = str(settings.get("base_url", ""))
    permissions = settings.get("permissions", {})
    host = urlparse(base_url).netloc
    if host and host not in permissions.get("network", []) and urlparse(base_url).hostname not in \
            permissions.get("network", []):
        raise PublishError(f"the base URL's host {host} is not declared under [permissions] network; the "
                           "permissions must name every host the package talks to")
    try:
        plugin = build_plugin(plugin_name or "store-openapi", openapi_options(str(spec), base_url or None,
                                                                             permissions.get("network", [])), project)
    except Exception as exc:
        raise PublishError(f"{spec} does not make a plugin: {exc}") from None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in (spec, project / OPENAPI_SETTINGS):
            info = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes for the same files
            archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    version = str(settings.get("version", ""))
    raw = {
        "name": f"{namespace}/{settings.get('package', plugin_name.replace('_', '-'))}", "version": version,
        "description": str(settings.get("description", "")), "kind": "openapi", "plugin": plugin_name,
        "base_url": base_url or None, "spec": spec.name,
        "tools": [{k: t[k] for k in ("name", "description", "effect", "parameters", "timeout") if k in t}
                  for t in plugin.manifest()["tools"]],
        "permissions": permissions,
        "artifact": {"file": f"{plugin_name}-{version}.zip", "sha256": hashlib.sha256(data).hexdigest(),
                     "length": len(data)},
    }
    try:
        return Package(parse_manifest(raw), data)
    except ManifestError as exc:
        raise PublishError(str(exc)) from None


def build_python(project: Path, namespace: str) -> Package:
    try:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PublishError(f"{project}/pyproject.toml is not valid TOML: {exc}") from None
    meta = pyproject.get("project", {})
    entry_points = meta.get("entry-points", {}).get("plugdeck.plugins", {})
    if len(entry_points) != 1:
        raise PublishError(f"{project}/pyproject.toml must declare exactly one plugdeck.plugins entry point "
                           f"(found {len(entry_points)})")
    (plugin_name, entry_point), = entry_points.items()
    extra = [d for d in meta.get("dependencies", []) if not d.strip().lower().startswith("plugdeck")]
    if extra:
        # Installing dependencies would mean running other packages' code unverified by this store.
        raise PublishError(f"store packages cannot depend on other packages yet (found {extra}); vendor them")
    settings = pyproject.get("tool", {}).get("plugdeck", {})
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _build_wheel(project, Path(tmp))
        data = wheel.read_bytes()
        described = _describe(wheel, entry_point, plugin_name, Path(tmp) / "unpacked")
    raw = {
        "name": f"{namespace}/{settings.get('package', plugin_name.replace('_', '-'))}",
        "version": meta.get("version", ""),
        "description": meta.get("description") or described["description"],
        "kind": "python",
        "plugin": plugin_name,
        "entry_point": entry_point,
        "tools": [{k: t[k] for k in ("name", "description", "effect", "parameters", "timeout") if k in t}
                  for t in described["tools"]],
        "permissions": settings.get("permissions", {}),
        "artifact": {"file": wheel.name, "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)},
    }
    try:
        return Package(parse_manifest(raw), data)
    except ManifestError as exc:
        raise PublishError(str(exc)) from None


def _build_wheel(project: Path, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(project.resolve())],
                          capture_output=True, text=True)
    wheels = list(out.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        raise PublishError(f"building a wheel of {project} failed:\n{done.stderr.strip()[-2000:]}")
    return wheels[0]


def _describe(wheel: Path, entry_point: str, plugin_name: str, into: Path) -> dict[str, Any]:
    from .unpack import unpack_wheel

    unpack_wheel(wheel.read_bytes(), into)
    done = subprocess.run([sys.executable, "-c", _DESCRIBE, str(into / "lib"), entry_point, plugin_name],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PublishError(f"the plugin's entry point {entry_point} does not load:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sign_namespace(current: bytes | None, additions: dict[str, bytes], signer) -> bytes:
    """The namespace's next metadata: the current targets kept, `additions` added, signed by `signer`.

    `current` comes from the registry, so it is checked first: it must carry this key's signature,
    or the registry would be asking the publisher to sign targets the publisher never published."""
    from tuf.api.metadata import Metadata, TargetFile, Targets
    from tuf.api.serialization.json import JSONSerializer

    now = datetime.now(timezone.utc).replace(microsecond=0)
    if current is None:
        md = Metadata(Targets(version=1, expires=now + NAMESPACE_EXPIRY))
    else:
        md = Metadata.from_bytes(current)
        signature = md.signatures.get(signer.public_key.keyid)
        try:
            if signature is None:
                raise ValueError("no signature by this key")
            signer.public_key.verify_signature(signature, md.signed_bytes)
        except Exception:
            raise PublishError("the store's current metadata for this namespace is not signed by your key; "
                               "refusing to sign on top of it") from None
        md.signed.version += 1
        md.signed.expires = now + NAMESPACE_EXPIRY
        md.signatures.clear()
    for path, data in additions.items():
        md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
    md.sign(signer)
    return md.to_bytes(JSONSerializer(compact=True))


def upload(store_url: str, package: Package, signer, token: str, *, timeout: float = 120.0) -> dict[str, Any]:
    """Sign the namespace's next metadata and send it with the files; the registry's answer."""
    import httpx

    manifest = package.manifest
    manifest_bytes = manifest.to_bytes()
    base = store_url.rstrip("/")
    with httpx.Client(timeout=timeout) as http:
        current = http.get(f"{base}/api/v1/namespaces/{manifest.namespace}/metadata")
        if current.status_code not in (200, 404):
            raise PublishError(f"the store answered {current.status_code}: {_detail(current)}")
        signed = sign_namespace(current.content if current.status_code == 200 else None,
                                {manifest_path(manifest.name, manifest.version): manifest_bytes,
                                 artifact_path(manifest.name, manifest.version, manifest.artifact.file): package.artifact},
                                signer)
        answer = http.post(f"{base}/api/v1/packages", headers={"Authorization": f"Bearer {token}"},
                           files={"manifest": ("manifest.json", manifest_bytes, "application/json"),
                                  "artifact": (manifest.artifact.file, package.artifact, "application/octet-stream"),
                                  "metadata": (f"{manifest.namespace}.json", signed, "application/json")})
    if answer.status_code != 201:
        raise PublishError(f"the store refused {manifest.name} {manifest.version} ({answer.status_code}): "
                           f"{_detail(answer)}")
    return answer.json()


def revoke(store_url: str, name: str, version: str, reason: str, signer, token: str) -> dict[str, Any]:
    """Revoke one of your versions: a signed `revoked.json` in your namespace, which clients see at their
    next refresh and which disables the plugin wherever it is installed."""
    import httpx

    from .layout import revoked_path
    from .manifest import canonical_json

    namespace = name.partition("/")[0]
    data = canonical_json({"name": name, "version": version, "reason": reason}).encode()
    base = store_url.rstrip("/")
    with httpx.Client(timeout=60) as http:
        current = http.get(f"{base}/api/v1/namespaces/{namespace}/metadata")
        if current.status_code != 200:
            raise PublishError(f"namespace {namespace!r} has nothing published at {store_url}")
        signed = sign_namespace(current.content, {revoked_path(name, version): data}, signer)
        answer = http.post(f"{base}/api/v1/revocations", headers={"Authorization": f"Bearer {token}"},
                           files={"revocation": ("revocation.json", data, "application/json"),
                                  "metadata": (f"{namespace}.json", signed, "application/json")})
    if answer.status_code != 201:
        raise PublishError(f"the store refused to revoke {name} {version} ({answer.status_code}): {_detail(answer)}")
    return answer.json()


def revoke_as_admin(store_url: str, name: str, version: str, reason: str, admin_token: str) -> dict[str, Any]:
    import httpx

    answer = httpx.post(f"{store_url.rstrip('/')}/api/v1/admin/revocations", timeout=60,
                        headers={"Authorization": f"Bearer {admin_token}"},
                        json={"name": name, "version": version, "reason": reason})
    if answer.status_code != 201:
        raise PublishError(f"the store refused to revoke {name} {version} ({answer.status_code}): {_detail(answer)}")
    return answer.json()


def register(store_url: str, namespace: str, signer, admin_token: str | None = None) -> str:
    """Claim a namespace for this key; the API token the store gives back (shown once)."""
    import httpx

    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    answer = httpx.post(f"{store_url.rstrip('/')}/api/v1/namespaces", headers=headers, timeout=30,
                        json={"namespace": namespace, "public_key": signer.public_key.to_dict()})
    if answer.status_code != 201:
        raise PublishError(f"the store refused namespace {namespace!r} ({answer.status_code}): {_detail(answer)}")
    return answer.json()["token"]


def _detail(response) -> str:
    try:
        return str(response.json().get("detail"))
    except Exception:
        return response.text[:500]
