"""Issue 11 item 4: hostile documents (zip bombs, runaway PDF streams, huge CSVs) are skipped with a
reason before the work they would cost, and the rest of an add goes in.

The bombs are built here, small on disk: tens of megabytes of zeros deflate to tens of kilobytes.
Bounded work is shown by what never ran (python-docx never opened the bomb, pypdf never extracted
its page) and by the bytes the cap check itself inflated, never by wall-clock time.
"""

import zipfile

import pytest
from conftest import SETTINGS, pdf_bytes, write_docx
from hostile_files import docx_bomb, pdf_bomb, pdf_form_bomb

from plugdeck.plugins.knowledge import limits as limits_module
from plugdeck.plugins.knowledge.base import KnowledgeBase
from plugdeck.plugins.knowledge.limits import MB, OverLimit, ReadLimits
from plugdeck.plugins.knowledge.readers import ReadError, read_document
from plugdeck.plugins.knowledge.settings import KnowledgeSettings, SettingsError, load_settings

@pytest.fixture
def spies(monkeypatch):
    """Records whether python-docx opened a file, which PDF pages pypdf extracted, and how many bytes
    the PDF cap check inflated."""
    import docx
    import pypdf

    seen = {"docx": 0, "pages": 0, "inflated": []}
    real_document, real_extract = docx.Document, pypdf.PageObject.extract_text
    real_measure = limits_module.InflateBudget.measure_flate

    def document(*args, **kwargs):
        seen["docx"] += bool(args or kwargs)  # opening a file; docx.Document() alone makes a new one
        return real_document(*args, **kwargs)

    def extract(self, *args, **kwargs):
        seen["pages"] += 1
        return real_extract(self, *args, **kwargs)

    def measure(self, data):
        try:
            return real_measure(self, data)
        finally:
            seen["inflated"].append(self.used)

    monkeypatch.setattr(docx, "Document", document)
    monkeypatch.setattr(pypdf.PageObject, "extract_text", extract)
    monkeypatch.setattr(limits_module.InflateBudget, "measure_flate", measure)
    return seen


def test_docx_bomb_is_refused_from_its_zip_directory(tmp_path, spies):
    bomb = docx_bomb(tmp_path / "bomb.docx", 60)
    assert bomb.stat().st_size < 200_000  # 60 MB of zeros, small on disk
    with pytest.raises(OverLimit) as refused:
        read_document(bomb)
    assert "word/document.xml inflates too much" in str(refused.value) and "max_member_mb" in str(refused.value)
    assert spies["docx"] == 0  # python-docx never opened it: nothing was inflated

    ratio = docx_bomb(tmp_path / "ratio.docx", 5)  # under the size caps, but 5 MB from a few kB
    with pytest.raises(OverLimit, match="compressed suspiciously well.*max_ratio"):
        read_document(ratio)
    total = ReadLimits(max_unpacked_bytes=3 * MB, max_ratio=10_000)
    with pytest.raises(OverLimit, match="the .docx inflates too much.*max_unpacked_mb"):
        read_document(ratio, total)
    with pytest.raises(OverLimit, match="too many parts.*max_members"):
        read_document(write_docx(tmp_path / "plain.docx"), ReadLimits(max_members=3))
    assert spies["docx"] == 0
    # A genuine file is read as before, and a raised cap lets the big one through to python-docx.
    assert "gym membership" in read_document(tmp_path / "plain.docx").text
    assert spies["docx"] == 1
    assert "gym membership" in read_document(ratio, ReadLimits(max_ratio=100_000)).text
    assert spies["docx"] == 2
    # Past every cap, XML that lxml refuses (a comment over 10 MB) fails this file alone, not the whole add.
    with pytest.raises(ReadError, match="not a valid .docx.*Comment too big"):
        read_document(docx_bomb(tmp_path / "comment.docx", 12), ReadLimits(max_ratio=100_000))


def test_docx_that_lies_about_its_size_fails_its_crc_check(tmp_path, spies):
    """zipfile never returns more than a member's recorded size, so a forged small size cannot smuggle
    the bomb past the directory check: reading stops at the recorded size and the CRC check fails."""
    bomb = docx_bomb(tmp_path / "liar.docx", 60, zip64=False)
    data = bytearray(bomb.read_bytes())
    header = -1
    while True:  # the central directory entry of word/document.xml
        header = data.find(b"PK\x01\x02", header + 1)
        name_length = int.from_bytes(data[header + 28 : header + 30], "little")
        if data[header + 46 : header + 46 + name_length] == b"word/document.xml":
            break
    assert int.from_bytes(data[header + 24 : header + 28], "little") > 60 * MB
    data[header + 24 : header + 28] = (4096).to_bytes(4, "little")  # its uncompressed size, forged
    bomb.write_bytes(bytes(data))
    with zipfile.ZipFile(bomb) as archive:
        assert archive.getinfo("word/document.xml").file_size == 4096
    with pytest.raises(ReadError, match="not a valid .docx"):
        read_document(bomb)
    assert spies["docx"] == 1  # it passed the directory check, and python-docx read at most 4096 bytes of it


def test_pdf_flate_bomb_is_measured_before_pypdf_inflates_it(tmp_path, spies):
    bomb = pdf_bomb(tmp_path / "bomb.pdf", [60])
    assert bomb.stat().st_size < 200_000
    with pytest.raises(OverLimit, match="a PDF stream inflates too much.*max_member_mb"):
        read_document(bomb)
    assert spies["pages"] == 0  # pypdf never decoded the page
    assert max(spies["inflated"]) <= ReadLimits().max_member_bytes + 1  # the check stopped at the cap

    # Many pages under the per-stream cap, together over the document's budget: pages are read until then.
    pages = pdf_bomb(tmp_path / "pages.pdf", [2, 2, 2, 2, 2])
    small = ReadLimits(max_unpacked_bytes=5 * MB, max_member_bytes=3 * MB)
    spies["inflated"].clear()
    with pytest.raises(OverLimit, match="the PDF's pages inflate too much.*max_unpacked_mb"):
        read_document(pages, small)
    assert spies["pages"] == 2 and sum(spies["inflated"][-1:]) <= 6 * MB
    with pytest.raises(OverLimit, match="too many pages.*max_pages"):
        read_document(pages, ReadLimits(max_pages=4))
    assert [b.page for b in read_document(pages).blocks] == [1, 2, 3, 4, 5]  # within the defaults: read

    # A bomb in a form XObject the page draws (pypdf decodes it for text, and at its own cap would drop
    # the text silently): measured with the page, before extraction.
    form = pdf_form_bomb(tmp_path / "form.pdf", 60)
    extracted = spies["pages"]
    with pytest.raises(OverLimit, match="a PDF stream inflates too much.*max_member_mb"):
        read_document(form)
    assert spies["pages"] == extracted
    assert "Inside the form" in read_document(form, ReadLimits(max_member_bytes=70 * MB)).text


def test_text_caps_for_every_reader(tmp_path):
    caps = ReadLimits(max_chars=20_000)
    (tmp_path / "big.txt").write_text("word " * 5_000)
    (tmp_path / "big.md").write_text("# Title\n\n" + "word " * 5_000)
    (tmp_path / "big.html").write_text("<p>" + "word " * 20_000 + "</p>")  # over 4x the cap in markup
    (tmp_path / "text.html").write_text("<div>" + "<p>words and words</p>" * 1_500 + "</div>")  # markup ok, text not
    (tmp_path / "security.pdf").write_bytes(pdf_bytes([["x" * 90] * 40] * 10))
    for name in ("big.txt", "big.md", "big.html", "text.html", "security.pdf"):
        with pytest.raises(OverLimit, match="max_chars"):
            read_document(tmp_path / name, caps)
    # A CSV whose long header is repeated on every row: 190 kB of input, millions of characters of rows.
    header = ",".join(f"a rather long column heading number {i}" for i in range(100))
    (tmp_path / "wide.csv").write_text(header + "\n" + "\n".join(",".join("1" * 100) for _ in range(900)))
    assert (tmp_path / "wide.csv").stat().st_size < 200_000
    with pytest.raises(OverLimit, match="the rows make too much text.*max_chars"):
        read_document(tmp_path / "wide.csv", ReadLimits(max_chars=1_000_000))
    with pytest.raises(OverLimit, match="the file is too large.*max_file_mb"):
        read_document(tmp_path / "wide.csv", ReadLimits(max_file_bytes=100_000))


def test_add_skips_what_is_over_a_cap_and_indexes_the_rest(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    docx_bomb(folder / "bomb.docx", 60)
    pdf_bomb(folder / "bomb.pdf", [60])
    (folder / "many.md").write_text("\n\n".join(f"Paragraph {i} is about topic {i}." for i in range(300)))
    (folder / "leave.md").write_text("# Leave\n\nNew employees get 25 days of paid vacation per year.\n")
    settings = KnowledgeSettings(limits=ReadLimits(max_chunks=5))
    kb = KnowledgeBase.open("docs", tmp_path / "home", embedder=embedder, settings=settings)
    report = kb.add([folder])
    outcome = {f.source: f for f in report.files}
    assert {s: f.status for s, f in outcome.items()} == {
        "docs/bomb.docx": "skipped", "docs/bomb.pdf": "skipped", "docs/many.md": "skipped", "docs/leave.md": "new"}
    assert "inflates too much" in outcome["docs/bomb.docx"].reason
    assert "a PDF stream inflates too much" in outcome["docs/bomb.pdf"].reason
    assert "too many chunks" in outcome["docs/many.md"].reason and "max_chunks" in outcome["docs/many.md"].reason
    assert report.to_dict()["counts"]["skipped"] == 3 and len(report.problems) == 3
    assert kb.search("vacation days", 1)[0].source == "docs/leave.md"
    assert kb.info()["documents"] == 1
    kb.close()


def test_limits_from_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PLUGDECK_CONFIG", raising=False)
    (tmp_path / "plugdeck.toml").write_text("[knowledge.limits]\nmax_file_mb = 1.5\nmax_chunks = 30\n")
    limits = load_settings(tmp_path).limits
    assert limits.max_file_bytes == 1_500_000 and limits.max_chunks == 30
    assert limits.max_chars == ReadLimits().max_chars
    assert SETTINGS.limits == ReadLimits()
    (tmp_path / "plugdeck.toml").write_text("[knowledge.limits]\nmax_size = 1\n")
    with pytest.raises(SettingsError, match="max_size.*known: max_file_mb"):
        load_settings(tmp_path)
    (tmp_path / "plugdeck.toml").write_text("[knowledge.limits]\nmax_chars = 0\n")
    with pytest.raises(SettingsError, match="max_chars must be more than 0"):
        load_settings(tmp_path)
