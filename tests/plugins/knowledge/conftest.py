"""Shared pieces for the knowledge tests: real documents of every supported type written here
(a hand-written PDF, a .docx from python-docx), the real embedding model loaded once per session,
and a knowledge base built from the documents."""

import subprocess
import sys
from pathlib import Path

import pytest

from plugdeck.plugins.knowledge.base import KnowledgeBase
from plugdeck.plugins.knowledge.embeddings import LocalEmbedder
from plugdeck.plugins.knowledge.settings import KnowledgeSettings

PLUGDECK = [sys.executable, "-m", "plugdeck.cli.main"]

LEAVE_MD = """---
title: Leave policy
---
# Leave

All leave is recorded in the HR portal.

## Vacation

New employees get 25 days of paid vacation per year.
Unused days can be carried over until March 31 of the next year.

- Requests go to your manager.
- Ask at least two weeks in advance.

```
# not a heading: code
```

## Sick leave

Tell your manager before 10:00 on the first day. From the fourth day a doctor's note is needed.
"""

OFFICE_TXT = """The office opens at 8:00 and closes at 18:00.

Visitors must sign in at the reception\u200b and wear a visitor badge.
"""

EXPENSES_HTML = """<!doctype html>
<html><head><title>Expenses</title><script>var tracking = "do not index me";</script></head>
<body>
<header><a href="/">Intranet home</a> | <a href="/news">News</a></header>
<nav><ul><li><a href="/a">Menu entry one</a></li><li>Menu entry two</li></ul></nav>
<main>
  <h1>Expenses</h1>
  <p>Submit receipts within <b>30 days</b> of the purchase.</p>
  <h2>Travel</h2>
  <p>Train travel is booked in second class.</p>
  <table><tr><th>Item</th><th>Limit</th></tr><tr><td>Hotel</td><td>150 EUR per night</td></tr></table>
</main>
<aside>Related: the cafeteria menu</aside>
<footer>Copyright 2024 Example Corp</footer>
</body></html>
"""

STAFF_CSV = "name,role,office\nAlice,Engineer,Berlin\nBob,Manager,Lisbon\n"

SECURITY_PDF_PAGES = [
    ["Security policy", "Badges must be worn at all times in the building."],
    ["Laptops must be locked with a cable lock when left unattended."],
]


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A small, valid PDF written by hand: one Helvetica text line per entry, one page per list."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(len(pages)))}] "
            f"/Count {len(pages)} >>").encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, lines in enumerate(pages):
        stream = "BT /F1 12 Tf 16 TL 72 720 Td " + " ".join(f"({escape(line)}) Tj T*" for line in lines) + " ET"
        objects[4 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                              f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>").encode()
        objects[5 + 2 * i] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        out += f"{offsets[number]:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = "Benefits"
    document.add_heading("Benefits", level=1)
    document.add_paragraph("The company pays half of the gym membership.")
    document.add_heading("Pension", level=2)
    document.add_paragraph("Employees can join the pension plan after three months.")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Plan", "Contribution"), ("Basic", "3 percent")]):
        for cell, text in zip(row.cells, cells):
            cell.text = text
    document.save(str(path))
    return path


def write_corpus(folder: Path) -> Path:
    """One document of every supported type, each with facts the tests ask about."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leave.md").write_text(LEAVE_MD, encoding="utf-8")
    (folder / "office.txt").write_text(OFFICE_TXT, encoding="utf-8")
    (folder / "expenses.html").write_text(EXPENSES_HTML, encoding="utf-8")
    (folder / "staff.csv").write_text(STAFF_CSV, encoding="utf-8")
    (folder / "security.pdf").write_bytes(pdf_bytes(SECURITY_PDF_PAGES))
    write_docx(folder / "benefits.docx")
    return folder


SETTINGS = KnowledgeSettings()  # explicit, so no test reads a config file from the real home


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once for the whole session."""
    local = LocalEmbedder()
    local.load()
    return local


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "plugdeck-home"


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "handbook")


@pytest.fixture(scope="session")
def handbook(tmp_path_factory, embedder):
    """A knowledge base of the whole corpus, shared by tests that only read it."""
    root = tmp_path_factory.mktemp("shared-kb")
    kb = KnowledgeBase.open("handbook", root / "home", embedder=embedder, settings=SETTINGS)
    kb.add([write_corpus(root / "handbook")])
    yield kb
    kb.close()


def plugdeck(env, *args, cwd=None, timeout=120):
    return subprocess.run([*PLUGDECK, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
