"""The registry's web pages: browse and search, and a package's page with its tools, permissions,
versions, publisher and the registry's checks. Server-rendered, no script; every text from a
publisher is escaped and its invisible characters spelled out (R13), under a CSP that allows nothing
but the page's own style."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d232a}
a{color:#0b5cad}h1 a{color:inherit;text-decoration:none}input{font:inherit;padding:.3rem;width:24rem}
.pkg{border-top:1px solid #dde;padding:.6rem 0}.dim{color:#667}.tag{font-size:12px;background:#eef;border-radius:3px;
padding:0 .3rem;margin-right:.3rem}.warn{color:#a40}table{border-collapse:collapse}td,th{padding:.2rem .6rem;
text-align:left;border-bottom:1px solid #eee;vertical-align:top}code{background:#f4f4f8;padding:0 .2rem}"""


def _text(value: Any) -> str:
    from ..plugins.scan import spell_out

    return escape(spell_out(str(value or "")))


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style><h1><a href='/'>plugdeck store</a></h1>{body}</html>")


def _state(version: dict[str, Any]) -> str:
    return f"<span class=warn>revoked {_text(version['revoked'])}</span>" if version["revoked"] else "available"


def index_page(query: str, results: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<div class=pkg><a href='/packages/{quote(r['name'])}'><b>{_text(r['name'])}</b></a> "
        f"<span class=dim>{_text(r['version'])}</span> <span class=tag>{_text(r['kind'])}</span>"
        f"<div>{_text(r['description'])}</div><div class=dim>tools: {', '.join(_text(t['name']) for t in r['tools'])}"
        f" · installs {int(r['installs'])}</div></div>" for r in results) or "<p class=dim>No packages found.</p>"
    form = (f"<form action='/' method=get><input name=q value='{escape(query, quote=True)}' "
            "placeholder='search names, descriptions, tools' autofocus> <button>Search</button></form>")
    return _page("plugdeck store", form + rows)


def package_page(data: dict[str, Any], store_url: str) -> str:
    latest = next((v for v in data["versions"] if v["version"] == data["latest"]), data["versions"][0])
    name = data["name"]
    tools = "".join(f"<tr><td><code>{_text(t['name'])}</code></td><td>{_text(t['effect'])}</td>"
                    f"<td>{_text(t['description'])}</td></tr>" for t in latest["tools"])
    p = latest["permissions"] or {}
    limits = {k: v for k, v in (p.get("limits") or {}).items() if v is not None}
    permissions = (f"<tr><th>network</th><td>{_text(', '.join(p.get('network', [])) or 'none')}</td></tr>"
                   f"<tr><th>secrets</th><td>{_text(', '.join(p.get('secrets', [])) or 'none')}</td></tr>"
                   f"<tr><th>filesystem</th><td>{_text(p.get('filesystem', 'none'))}</td></tr>"
                   f"<tr><th>limits</th><td>{_text(limits or 'none declared')}</td></tr>")
    versions = "".join(f"<tr><td>{_text(v['version'])}</td><td>{_state(v)}</td></tr>" for v in data["versions"])
    findings = latest["checks"].get("scanner") or []
    checks = ("<p>Schema checked; the metadata scanner found nothing.</p>" if not findings else
              "<ul>" + "".join(f"<li class=warn>{_text(f)}</li>" for f in findings) + "</ul>")
    checks += sandbox_checks(latest["checks"].get("sandbox"))
    install = f"plugdeck install {name} --store {store_url}"
    body = (f"<h2>{_text(name)} <span class=dim>{_text(latest['version'])}</span></h2>"
            f"<p>{_text(latest['description'])}</p><p class=dim>publisher: namespace <b>{_text(name.split('/')[0])}"
            f"</b> (its own key signs every version) · {_text(latest['kind'])} · installs {int(latest['installs'])}</p>"
            f"<h3>Install</h3><p><code>{escape(install)}</code><br><span class=dim>plugdeck verifies the package "
            "through TUF, shows these tools and permissions, and installs it only with your consent.</span></p>"
            f"<h3>Tools</h3><table><tr><th>tool</th><th>effect</th><th>description</th></tr>{tools}</table>"
            f"<h3>Permissions</h3><table>{permissions}</table><h3>Publish-time checks</h3>{checks}"
            f"<h3>Versions</h3><table>{versions}</table>")
    return _page(name, body)


def sandbox_checks(result: dict[str, Any] | None) -> str:
    """The registry's run of the package (verify.py): whether it ran, what each tool's one call tried."""
    if not result:
        return "<p class=warn>Not run in the sandbox (published before this registry ran packages).</p>"
    status = result.get("status", "?")
    lines = [f"<p{'' if status == 'ok' else ' class=warn'}>Sandbox run: <b>{_text(status)}</b>: "
             f"{_text(result.get('detail', ''))}</p>"]
    network = result.get("network") or {}
    items = [f"<li class=warn>{_text(n['tool'])} tried {_text(n['method'])} {_text(n['url'])}, a host the "
             "manifest does not declare</li>" for n in network.get("undeclared", [])]
    items += [f"<li>{_text(n['tool'])} tried {_text(n['method'])} {_text(n['url'])} (declared)</li>"
              for n in network.get("declared", [])]
    items += [f"<li class=warn>{_text(f['tool'])}: file access refused by the sandbox: {_text(f['error'])}</li>"
              for f in result.get("filesystem_refused", [])]
    if status == "ok" and not items:
        items.append("<li>No network use or refused file access observed when each tool was called once.</li>")
    return lines[0] + ("<ul>" + "".join(items) + "</ul>" if items else "")
