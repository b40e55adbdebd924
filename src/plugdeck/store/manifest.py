"""A store package's manifest: who publishes it, what it is, what its tools are and what it may touch.

The manifest travels as its own TUF target beside the artifact, so the client verifies it before it
shows it to the person deciding, and it names the artifact's sha256 so the two cannot be mixed.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import UserError
from ..schemas import canonical_json

NAMESPACE = r"[a-z][a-z0-9-]{0,38}"
PACKAGE = r"[a-z][a-z0-9_-]{0,63}"
# Semantic versioning 2.0.0 without build metadata (a build tag would make two names for one version).
SEMVER = (r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
          r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?")
MANIFEST_FILE = "manifest.json"


class ManifestError(UserError, ValueError):
    """A manifest that cannot be a store package's; the message says which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolDefinition(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    description: str = Field(default="", max_length=4000)
    effect: Literal["read", "write"] = "read"
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout: float | None = Field(default=None, gt=0, le=3600)

    def digest(self) -> str:
        """sha256 over the canonical JSON of the whole definition (R11: a changed parameter description
        or effect changes it as surely as a changed description)."""
        return "sha256:" + hashlib.sha256(canonical_json(self.model_dump()).encode()).hexdigest()


class Limits(_Strict):
    memory_mb: int | None = Field(default=None, gt=0, le=65536)
    cpu_seconds: float | None = Field(default=None, gt=0, le=86400)
    timeout: float | None = Field(default=None, gt=0, le=3600)  # one tool call, seconds


class Permissions(_Strict):
    network: list[str] = Field(default_factory=list)  # hosts (host or host:port), no schemes, no paths
    secrets: list[str] = Field(default_factory=list)  # environment variable names
    filesystem: Literal["none", "scratch", "kb"] = "none"
    limits: Limits = Field(default_factory=Limits)

    @field_validator("network")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]{1,253}(:\d{1,5})?", host):
                raise ValueError(f"network host {host!r}: give a host name (optionally *.domain or host:port), "
                                 "without a scheme or path")
        return sorted(set(hosts))

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,127}", name):
                raise ValueError(f"secret {name!r}: name an environment variable (capitals, digits, '_')")
        return sorted(set(names))


class Artifact(_Strict):
    file: str = Field(pattern=r"^[A-Za-z0-9_.+-]{1,200}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    length: int = Field(gt=0)


class MCPServer(_Strict):
    """How an `mcp` package's server is fetched and started: a package of PyPI or npm, at one exact
    version (the official MCP registry's server.json `packages` entry, cut to what plugdeck runs)."""

    registry: Literal["pypi", "npm"]
    identifier: str = Field(pattern=r"^(@[a-z0-9][a-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]{0,213}$")
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")  # exact: no ranges, no "latest"
    transport: Literal["stdio"] = "stdio"
    arguments: list[str] = Field(default_factory=list, max_length=64)  # after the package, as given

    @field_validator("version")
    @classmethod
    def _exact(cls, version: str) -> str:
        if version.lower() == "latest":
            raise ValueError("name the exact version of the server's package, not 'latest'")
        return version


class Manifest(_Strict):
    name: str  # namespace/package
    version: str
    description: str = Field(default="", max_length=2000)
    kind: Literal["python", "openapi", "mcp"]
    plugin: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")  # the plugin name its tools are called under
    entry_point: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # python
    base_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")  # openapi
    spec: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}\.(json|yaml|yml)$")  # openapi, in the artifact
    server: MCPServer | None = None  # mcp
    tools: list[ToolDefinition] = Field(min_length=1, max_length=500)
    permissions: Permissions = Field(default_factory=Permissions)
    artifact: Artifact

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(f"{NAMESPACE}/{PACKAGE}", name):
            raise ValueError(f"{name!r} is not namespace/name (lowercase letters, digits, '-'; e.g. acme/weather)")
        return name

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        if not re.fullmatch(SEMVER, version):
            raise ValueError(f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.2.0)")
        return version

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[ToolDefinition]) -> list[ToolDefinition]:
        names = [t.name for t in tools]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"more than one tool named {twice}")
        return tools

    @model_validator(mode="after")
    def _kind_fields(self) -> "Manifest":
        if self.kind == "python" and not self.entry_point:
            raise ValueError("a python package names its entry_point (module:attribute)")
        if self.kind == "openapi" and not (self.spec and self.base_url):
            raise ValueError("an openapi package names its spec file and base_url")
        if self.kind == "mcp" and self.server is None:
            raise ValueError("an mcp package names its server (registry, identifier, version)")
        return self

    @property
    def namespace(self) -> str:
        return self.name.partition("/")[0]

    @property
    def package(self) -> str:
        return self.name.partition("/")[2]

    def tool_digests(self) -> dict[str, str]:
        return {t.name: t.digest() for t in self.tools}

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(exclude_none=True)).encode()


def parse_manifest(data: bytes | str | dict[str, Any]) -> Manifest:
    """A Manifest from JSON bytes or a dict, or ManifestError naming every problem."""
    try:
        raw = json.loads(data) if isinstance(data, (bytes, str)) else data
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ManifestError("the manifest must be a JSON object")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}" for e in exc.errors())
        raise ManifestError(f"the manifest is not valid: {problems}") from None


def version_key(version: str) -> tuple:
    """Order versions as semver does: numbers numerically, a pre-release before its release."""
    match = re.fullmatch(SEMVER, version)
    if not match:
        raise ManifestError(f"{version!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    pre_key: tuple = (1,) if pre is None else (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p)
                                                   for p in pre.split(".")])
    return (int(major), int(minor), int(patch), pre_key)
