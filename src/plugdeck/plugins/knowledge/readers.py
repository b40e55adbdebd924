"""Readers: a file in, its text and structure out (headings, paragraphs, pages, rows).

Every reader returns a `Document`: the extracted text and its blocks, each block a span of that
text. For Markdown and plain text the extracted text is the file's own text (newlines normalised,
invisible control characters removed), so offsets and line numbers point into the file itself.
A file that cannot be read raises `ReadError` with a reason a person can act on; a file over one of
the caps in limits.py (a zip bomb, a runaway PDF stream, a huge CSV) raises `OverLimit`, checked
before the work it bounds.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from .limits import (InflateBudget, OverLimit, ReadLimits, check_characters, check_file_size, check_zip, megabytes,
                     over)
from .text import plain, visible

SUPPORTED = {
    ".md": "md", ".markdown": "md", ".txt": "txt", ".text": "txt", ".html": "html", ".htm": "html",
    ".pdf": "pdf", ".docx": "docx", ".csv": "csv",
}
HTML_MARKUP = 4  # an HTML source may be this many times max_chars: markup is not text
FORM_DEPTH = 8  # form XObjects inside form XObjects, followed this deep


class ReadError(UserError):
    """A file that cannot be ingested, with the reason."""


@dataclass(frozen=True, slots=True)
class Block:
    start: int  # offsets into Document.text
    end: int
    heading: int = 0  # 1-6 for a heading, 0 for body text
    title: str = ""  # a heading's text without markup
    page: int | None = None  # PDF page, 1-based
    row: int | None = None  # CSV row as a spreadsheet numbers it (the header is row 1)


@dataclass
class Document:
    type: str  # md, txt, html, pdf, docx, csv
    text: str
    blocks: list[Block]
    title: str = ""
    # Start offset of each line, when Document.text is the file's own text (md, txt): lines are
    # then line numbers in the file.
    line_starts: list[int] | None = field(default=None, repr=False)

    def line_of(self, offset: int) -> int | None:
        if self.line_starts is None:
            return None
        return bisect.bisect_right(self.line_starts, offset)


def file_type(path: Path) -> str | None:
    return SUPPORTED.get(path.suffix.lower())


def unsupported_message(path: Path) -> str:
    kinds = " ".join(sorted(SUPPORTED))
    suffix = path.suffix or "(no extension)"
    return f"unsupported file type {suffix}; supported: {kinds}"


def read_document(path: Path, limits: ReadLimits | None = None) -> Document:
    """The file's text and structure; ReadError if it cannot be read, OverLimit if it is over a cap."""
    limits = limits or ReadLimits()
    kind = file_type(path)
    if kind is None:
        raise ReadError(unsupported_message(path))
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(f"cannot open it: {exc.strerror or exc}") from None
    check_file_size(size, limits)
    try:
        document = _READERS[kind](path, limits)
    except (ReadError, OverLimit):
        raise
    except MemoryError:
        raise ReadError("reading it ran out of memory; lower the caps in [knowledge.limits]") from None
    except OSError as exc:
        raise ReadError(f"cannot read it: {exc.strerror or exc}") from None
    check_characters(len(document.text), limits)
    if not any(not b.heading for b in document.blocks):
        raise ReadError("no text found in it" + (" (a scanned PDF? run OCR on it first)" if kind == "pdf" else ""))
    return document


# ---- text formats ---------------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """Text from bytes: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReadError("it looks like a binary file, not text")
    for encoding in ("utf-8-sig", "utf-16"):
        if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            pass
    return data.decode("cp1252", errors="replace")


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _source(path: Path, limits: ReadLimits, factor: int = 1) -> str:
    """A text file's characters, refused before parsing when there are too many."""
    text = visible(decode(path.read_bytes()))
    if len(text) > factor * limits.max_chars:
        raise over("the text is too long", f"{len(text):,} characters", f"{factor * limits.max_chars:,}",
                   "max_chars")
    return text


def read_text(path: Path, limits: ReadLimits) -> Document:
    text = _source(path, limits)
    blocks = []
    for match in re.finditer(r"\S(?:.*?\S)?(?=\n[ \t]*\n|\s*$)", text, re.DOTALL):
        blocks.append(Block(match.start(), match.end()))
    return Document("txt", text, blocks, line_starts=_line_starts(text))


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def read_markdown(path: Path, limits: ReadLimits) -> Document:
    from markdown_it import MarkdownIt

    text = _source(path, limits)
    title = ""
    parsed = text
    front = _FRONT_MATTER.match(text)
    if front:
        found = re.search(r"^title:\s*[\"']?(.*?)[\"']?\s*$", front.group(1), re.MULTILINE)
        title = found.group(1) if found else ""
        # Blank out the front matter but keep its lines, so line numbers stay the file's.
        parsed = "\n" * front.group(0).count("\n") + text[front.end():]
    starts = _line_starts(text)

    def offset(line: int) -> int:
        return starts[line] if line < len(starts) else len(text)

    tokens = MarkdownIt("commonmark").enable("table").parse(parsed)
    blocks = []
    for i, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.type.endswith("_close") or token.type == "hr":
            continue
        start, end = _trimmed(text, offset(token.map[0]), offset(token.map[1]))
        if end <= start:
            continue
        if token.type == "heading_open":
            heading = plain(tokens[i + 1].content)
            blocks.append(Block(start, end, heading=int(token.tag[1]), title=heading))
            title = title or heading
        elif not (token.type == "html_block" and token.content.lstrip().startswith("<!--")):
            blocks.append(Block(start, end))
    return Document("md", text, blocks, title=title, line_starts=starts)


def read_csv(path: Path, limits: ReadLimits) -> Document:
    raw = _source(path, limits)
    try:
        dialect = csv.Sniffer().sniff(raw[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(raw), dialect))
    except csv.Error as exc:
        raise ReadError(f"not valid CSV: {exc}") from None
    # Rows are numbered as a spreadsheet shows them (the header is row 1; blank rows count).
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if len(numbered) < 2:
        raise ReadError("no data rows (a CSV needs a header row and at least one row of data)")
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(numbered[0][1])]
    # Each row becomes "Name: Alice | Days: 25": a row read alone still says what its values mean.
    parts, blocks, position = [], [], 0
    for number, row in numbered[1:]:
        cells = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {cell.strip()}"
                 for i, cell in enumerate(row) if cell.strip()]
        line = " | ".join(cells)
        if position + len(line) > limits.max_chars:  # a long header repeated on every row multiplies the text
            check_characters(position + len(line), limits, "the rows make too much text")
        blocks.append(Block(position, position + len(line), row=number))
        parts.append(line)
        position += len(line) + 1
    return Document("csv", "\n".join(parts), blocks, title=path.stem)


# ---- HTML -------------------------------------------------------------------------------------------

_SKIP = "script, style, noscript, template, svg, canvas, iframe, form, button, select, nav, aside, footer, " \
        "[role=navigation], [role=banner], [role=contentinfo], [role=complementary], [aria-hidden=true], [hidden]"
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LEAVES = {"p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "caption", "address", "summary"}
_CONTAINERS = {"div", "section", "article", "main", "body", "ul", "ol", "dl", "table", "thead", "tbody", "tfoot",
               "details", "figure", "header", "center", "fieldset"}


class _Assembler:
    """Collects block texts in order and builds the document text with offsets."""

    def __init__(self, limits: ReadLimits) -> None:
        self.parts: list[str] = []
        self.blocks: list[Block] = []
        self.length = 0
        self.limits = limits

    def add(self, text: str, heading: int = 0, page: int | None = None) -> None:
        text = visible(text)
        text = " ".join(text.split()) if heading or "\n" not in text else text.strip()
        if not text:
            return
        if self.parts:
            self.length += 2  # the "\n\n" between blocks
        check_characters(self.length + len(text), self.limits)
        self.blocks.append(Block(self.length, self.length + len(text), heading=heading,
                                 title=text if heading else "", page=page))
        self.parts.append(text)
        self.length += len(text)

    def text(self) -> str:
        return "\n\n".join(self.parts)


def read_html(path: Path, limits: ReadLimits) -> Document:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(_source(path, limits, HTML_MARKUP))
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node else ""
    for node in tree.css(_SKIP):
        node.decompose()
    root = tree.css_first("main") or tree.css_first("[role=main]") or _largest(tree.css("article")) or tree.body
    out = _Assembler(limits)
    if root is not None:
        for node in root.css("body > header"):
            node.decompose()  # the page banner; a header inside an article is kept
        _walk(root, out)
    if not title:
        title = next((b.title for b in out.blocks if b.heading), "")
    return Document("html", out.text(), out.blocks, title=title)


def _largest(nodes):
    return max(nodes, key=lambda n: len(n.text()), default=None)


def _walk(node, out: _Assembler) -> None:
    inline: list[str] = []

    def flush() -> None:
        if inline:
            out.add("".join(inline))
            inline.clear()

    for child in node.iter(include_text=True):
        if child.is_text_node:
            inline.append(child.text_content or "")
            continue
        tag = child.tag
        if tag in _HEADINGS:
            flush()
            out.add(child.text(), heading=_HEADINGS[tag])
        elif tag == "tr":
            flush()
            cells = [" ".join(c.text().split()) for c in child.css("th, td")]
            out.add(" | ".join(c for c in cells if c))
        elif tag == "br":
            inline.append("\n")
        elif tag == "pre":
            flush()
            out.add(child.text())
        elif tag in _LEAVES and not _has_blocks(child):
            flush()
            out.add(child.text())
        elif tag in _CONTAINERS or tag in _LEAVES:
            flush()
            _walk(child, out)
        else:
            inline.append(child.text())
    flush()


def _has_blocks(node) -> bool:
    return any(child.tag in _LEAVES or child.tag in _CONTAINERS or child.tag in _HEADINGS for child in node.iter())


# ---- PDF and DOCX -------------------------------------------------------------------------------------


def read_pdf(path: Path, limits: ReadLimits) -> Document:
    import logging

    from pypdf.errors import PdfReadError

    # pypdf logs every oddity it repairs; what matters reaches the person as a ReadError instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        with _pypdf_caps(limits):
            return _read_pdf(path, limits)
    except (ReadError, OverLimit):
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means "unreadable"
        if type(exc).__name__ == "LimitReachedError":  # pypdf's own cap, set from ours by _pypdf_caps
            raise over("a PDF stream inflates too much", str(exc), megabytes(limits.max_member_bytes),
                       "max_member_mb") from None
        if type(exc).__module__.startswith("pypdf") or "cryptography" in str(exc).lower():
            raise ReadError(f"not a readable PDF ({exc})") from None
        raise


def _read_pdf(path: Path, limits: ReadLimits) -> Document:
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted and not reader.decrypt(""):
        raise ReadError("the PDF is password-protected; save an unprotected copy and add that")
    pages = len(reader.pages)
    if pages > limits.max_pages:
        raise over("the PDF has too many pages", f"{pages:,}", f"{limits.max_pages:,}", "max_pages")
    out = _Assembler(limits)
    budget = InflateBudget(limits)
    for number, page in enumerate(reader.pages, start=1):
        _measure_contents(page, budget)  # before pypdf inflates them
        for paragraph in re.split(r"\n[ \t]*\n", page.extract_text() or ""):
            out.add(paragraph, page=number)
    title = (reader.metadata.title if reader.metadata and reader.metadata.title else "") or ""
    return Document("pdf", out.text(), out.blocks, title=str(title))


def _measure_contents(page, budget: InflateBudget) -> None:
    """Charge what text extraction will decode on this page (its content streams and the form
    XObjects they may draw, each stream once per document) to the budget: Flate streams by a bounded
    inflate of their raw bytes, others by their raw size (pypdf's own caps, set from ours, bound those)."""
    from pypdf.generic import ArrayObject

    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    streams = [s.get_object() for s in contents] if isinstance(contents, ArrayObject) else [contents]
    for stream in [*streams, *_forms(page.get("/Resources"))]:
        raw = getattr(stream, "_data", None)
        if not isinstance(raw, bytes) or id(stream) in budget.seen:
            continue
        budget.seen.add(id(stream))
        filters = stream.get("/Filter")
        filters = [str(f) for f in filters] if isinstance(filters, list) else [str(filters)] if filters else []
        if filters in (["/FlateDecode"], ["/Fl"]):
            budget.spend(budget.measure_flate(raw))
        else:
            budget.spend(len(raw))


def _forms(resources, depth: int = 0):
    """The form XObjects a page's resources name, and those their own resources name (pypdf decodes them
    for text; when one is over pypdf's cap it drops its text silently, so they are measured here)."""
    from pypdf.generic import DictionaryObject

    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if isinstance(resources, DictionaryObject) else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject) or depth > FORM_DEPTH:
        return
    for reference in xobjects.values():
        form = reference.get_object()
        if isinstance(form, DictionaryObject) and form.get("/Subtype") == "/Form":
            yield form
            yield from _forms(form.get("/Resources"), depth + 1)


def _pypdf_caps(limits: ReadLimits):
    """pypdf's decompression caps (pypdf 5.1 and later), lowered to ours for the streams that text
    extraction decodes beyond the page contents (form XObjects, fonts)."""
    import contextlib

    try:
        from pypdf import apply_configuration
    except ImportError:
        return contextlib.nullcontext()
    cap = limits.max_member_bytes
    # Output caps only: a big image's raw stream is never decoded for text, and must not fail the file.
    return apply_configuration(zlib_maximum_output_length=cap, lzw_maximum_output_length=cap,
                               run_length_maximum_output_length=cap, array_based_stream_maximum_output_length=cap,
                               stream_decoding_work_maximum_length=cap)


def read_docx(path: Path, limits: ReadLimits) -> Document:
    import zipfile

    check_zip(path, limits)  # before python-docx inflates every part into memory
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    from lxml.etree import XMLSyntaxError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, XMLSyntaxError) as exc:
        raise ReadError(f"not a valid .docx file (damaged, or an old .doc renamed?): {exc}") from None
    out = _Assembler(limits)
    title = (document.core_properties.title or "").strip()
    if document.element.body is None:
        raise ReadError("not a valid .docx file: its document has no body")
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = " ".join(cell.text.split())
                    if value and (not cells or cells[-1] != value):  # merged cells repeat their text
                        cells.append(value)
                out.add(" | ".join(cells))
            continue
        style = (item.style.name if item.style is not None else "") or ""
        level = _docx_heading_level(style)
        out.add(item.text, heading=level)
        if level and not title:
            title = " ".join(item.text.split())
    return Document("docx", out.text(), out.blocks, title=title)


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)), 6) if match else 0


_READERS = {"md": read_markdown, "txt": read_text, "html": read_html, "pdf": read_pdf, "docx": read_docx, "csv": read_csv}
