"""Readers and chunking on real files of every supported type (no embeddings needed)."""

import io
import zipfile

import pytest
from conftest import EXPENSES_HTML, LEAVE_MD, SECURITY_PDF_PAGES, pdf_bytes, write_corpus, write_docx

from plugdeck.plugins.knowledge.chunking import chunk_document
from plugdeck.plugins.knowledge.readers import ReadError, read_document
from plugdeck.plugins.knowledge.text import numbers, sentences


def test_markdown_keeps_headings_lines_and_exact_offsets(tmp_path):
    path = tmp_path / "leave.md"
    path.write_text(LEAVE_MD, encoding="utf-8")
    document = read_document(path)
    assert document.type == "md" and document.title == "Leave policy"  # from the front matter
    chunks = chunk_document(document)
    assert [c.title_path for c in chunks] == [("Leave",), ("Leave", "Vacation"), ("Leave", "Sick leave")]
    lines = LEAVE_MD.split("\n")
    for chunk in chunks:
        assert LEAVE_MD[chunk.start : chunk.end] == chunk.text  # offsets point into the file itself
        assert lines[chunk.line_start - 1].strip() == chunk.text.split("\n")[0].strip()
    vacation = chunks[1]
    assert vacation.text.startswith("New employees get 25 days") and vacation.line_start == 10
    assert "# not a heading" in vacation.text  # a '#' inside a code fence is not a heading
    assert not any("title:" in c.text for c in chunks)  # front matter is metadata, not text


def test_html_keeps_main_text_without_navigation(tmp_path):
    path = tmp_path / "expenses.html"
    path.write_text(EXPENSES_HTML, encoding="utf-8")
    document = read_document(path)
    assert document.title == "Expenses"
    for noise in ("Menu entry", "Intranet home", "Copyright", "cafeteria", "tracking"):
        assert noise not in document.text
    assert "Submit receipts within 30 days of the purchase." in document.text  # inline <b> kept in place
    chunks = chunk_document(document)
    assert chunks[-1].title_path == ("Expenses", "Travel") and "Hotel | 150 EUR per night" in chunks[-1].text
    assert all(document.text[c.start : c.end] == c.text for c in chunks)


def test_pdf_keeps_page_numbers(tmp_path):
    path = tmp_path / "security.pdf"
    path.write_bytes(pdf_bytes(SECURITY_PDF_PAGES))
    chunks = chunk_document(read_document(path))
    assert [c.page for c in chunks] == [1, 2]
    assert "Badges must be worn" in chunks[0].text and "cable lock" in chunks[1].text


def test_docx_headings_paragraphs_and_tables(tmp_path):
    chunks = chunk_document(read_document(write_docx(tmp_path / "benefits.docx")))
    assert chunks[0].title_path == ("Benefits",) and "gym membership" in chunks[0].text
    assert chunks[1].title_path == ("Benefits", "Pension")
    assert "Basic | 3 percent" in chunks[1].text


def test_csv_rows_carry_their_header_and_row_numbers(tmp_path):
    path = tmp_path / "staff.csv"
    path.write_text("name;role\nAlice;Engineer\n\nBob;Manager\n", encoding="utf-8")  # semicolons, a blank line
    chunks = chunk_document(read_document(path), max_chars=50, overlap=0)
    assert [c.text for c in chunks] == ["name: Alice | role: Engineer", "name: Bob | role: Manager"]
    assert [(c.line_start, c.line_end) for c in chunks] == [(2, 2), (4, 4)]  # rows as a spreadsheet numbers them


def test_text_removes_invisible_characters(tmp_path):
    path = tmp_path / "note.txt"
    path.write_text("Pay\u200b attention\U000e0041\U000e0042 please.\r\n\r\nSecond\u202e part.", encoding="utf-8")
    document = read_document(path)
    assert document.text == "Pay attention please.\n\nSecond part."
    assert [document.text[b.start : b.end] for b in document.blocks] == ["Pay attention please.", "Second part."]


@pytest.mark.parametrize("name, content, reason", [
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "not a readable PDF"),
    ("old.docx", b"\xd0\xcf\x11\xe0 an old binary .doc", "not a valid .docx"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    ("empty.md", b"# Only a heading\n", "no text"),
    ("sheet.xlsx", b"PK\x03\x04", "unsupported file type .xlsx"),
    ("one-row.csv", b"name,role\n", "no data rows"),
])
def test_unreadable_files_say_why(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ReadError, match=reason):
        read_document(path)


def test_password_protected_pdf(tmp_path):
    from pypdf import PdfReader, PdfWriter

    plain_path = tmp_path / "plain.pdf"
    plain_path.write_bytes(pdf_bytes([["Secret numbers inside."]]))
    writer = PdfWriter(clone_from=PdfReader(plain_path))
    writer.encrypt("open sesame")
    buffer = io.BytesIO()
    writer.write(buffer)
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(buffer.getvalue())
    with pytest.raises(ReadError, match="password-protected"):
        read_document(locked)


def test_scanned_pdf_without_text(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf_bytes([[]]))
    with pytest.raises(ReadError, match="scanned PDF"):
        read_document(path)


def test_damaged_docx_zip(tmp_path):
    path = tmp_path / "damaged.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(ReadError, match="not a valid .docx"):
        read_document(path)


def test_chunks_respect_the_size_limit_and_overlap(tmp_path):
    sentence = "Sentence number {} talks about the travel policy and hotels."
    path = tmp_path / "long.md"
    path.write_text("# Travel\n\n" + " ".join(sentence.format(i) for i in range(40)) + "\n", encoding="utf-8")
    document = read_document(path)
    chunks = chunk_document(document, max_chars=300, overlap=120)
    assert len(chunks) > 5
    assert all(len(c.text) <= 300 and c.title_path == ("Travel",) for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end  # consecutive chunks share whole sentences
        assert document.text[after.start : before.end].strip().endswith(".")
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    body = document.blocks[-1]
    assert set(range(body.start, body.end)) - covered <= {i for i in range(body.start, body.end)
                                                          if document.text[i].isspace()}


def test_every_corpus_file_reads(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    types = {read_document(p).type for p in folder.iterdir()}
    assert types == {"md", "txt", "html", "pdf", "docx", "csv"}


def test_sentences_keep_citations_abbreviations_and_wrapped_lines():
    text = ("New employees get 25 days. [1] Ask e.g. by email, Dr. Smith approves [2].\n"
            "This line is hard\nwrapped here.\n- item one\n- item two")
    assert sentences(text) == [
        "New employees get 25 days. [1]",
        "Ask e.g. by email, Dr. Smith approves [2].",
        "This line is hard\nwrapped here.",
        "- item one",
        "- item two",
    ]
    assert numbers("Twenty-five days for 2,340 people at 3.50 EUR, not [1]") == {"25", "2340", "3.5"}
