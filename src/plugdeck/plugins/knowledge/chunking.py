"""Chunking that follows the document's structure.

A heading starts a new section, and so does a new PDF page; a chunk never spans two sections.
Within a section, whole paragraphs are packed up to `max_chars`; a paragraph that does not fit is
split at sentences (and a sentence that does not fit, at spaces). Consecutive chunks of a section
share up to `overlap` characters of whole sentences, so a fact on a boundary is found in both.
Each chunk is an exact span of the document's text, with its title path, page and lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from .readers import Block, Document
from .text import sentence_spans

DEFAULT_MAX_CHARS = 800  # all-MiniLM-L6-v2 reads 256 word pieces: about 1000 characters of English
DEFAULT_OVERLAP = 120


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    start: int
    end: int
    title_path: tuple[str, ...]
    page: int | None = None
    line_start: int | None = None  # lines in the file (md, txt) or spreadsheet rows (csv)
    line_end: int | None = None

    @property
    def embedding_text(self) -> str:
        """What is embedded: the headings give a short passage its context."""
        return " > ".join(self.title_path) + "\n" + self.text if self.title_path else self.text


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    block: Block


def chunk_document(document: Document, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    if max_chars < 50 or not 0 <= overlap < max_chars // 2:
        raise ValueError("chunk size must be at least 50 characters and overlap less than half of it")
    if document.type == "csv":
        overlap = 0  # each row stands alone; repeating rows would only duplicate them
    chunks: list[Chunk] = []
    for path, blocks in _sections(document.blocks):
        pieces = [p for block in blocks for p in _pieces(document.text, block, max_chars)]
        for group in _pack(document.text, pieces, max_chars, overlap):
            chunks.append(_chunk(document, path, group))
    return chunks


def _sections(blocks: list[Block]):
    """(title path, body blocks) for each run of blocks under the same headings and on the same page."""
    stack: list[tuple[int, str]] = []
    current: list[Block] = []
    current_path: tuple[str, ...] = ()
    for block in blocks:
        if block.heading:
            if current:
                yield current_path, current
                current = []
            while stack and stack[-1][0] >= block.heading:
                stack.pop()
            stack.append((block.heading, block.title))
            current_path = tuple(title for _, title in stack)
            continue
        if current and block.page != current[-1].page:
            yield current_path, current
            current = []
        current.append(block)
    if current:
        yield current_path, current


def _pieces(text: str, block: Block, max_chars: int) -> list[_Piece]:
    if block.end - block.start <= max_chars:
        return [_Piece(block.start, block.end, block)]
    pieces = []
    for start, end in sentence_spans(text, block.start, block.end):
        while end - start > max_chars:  # one very long "sentence": cut at the last space that fits
            cut = text.rfind(" ", start, start + max_chars)
            cut = cut if cut > start + max_chars // 2 else start + max_chars
            pieces.append(_Piece(start, cut, block))
            start = cut
            while start < end and text[start].isspace():
                start += 1
        if end > start:
            pieces.append(_Piece(start, end, block))
    return pieces


def _pack(text: str, pieces: list[_Piece], max_chars: int, overlap: int) -> list[list[_Piece]]:
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    for piece in pieces:
        if current and piece.end - current[0].start > max_chars:
            groups.append(current)
            current = _tail(text, current, overlap)
            if current and piece.end - current[0].start > max_chars:
                current = []
        current.append(piece)
    if current:
        groups.append(current)
    return groups


def _tail(text: str, pieces: list[_Piece], budget: int) -> list[_Piece]:
    """The whole sentences at the end of a chunk that fit in the overlap budget."""
    if budget <= 0:
        return []
    last = pieces[-1]
    tail: list[_Piece] = []
    for start, end in reversed(sentence_spans(text, last.start, last.end)):
        if last.end - start > budget:
            break
        tail.insert(0, _Piece(start, end, last.block))
    return tail


def _chunk(document: Document, path: tuple[str, ...], pieces: list[_Piece]) -> Chunk:
    start, end = pieces[0].start, pieces[-1].end
    first, last = pieces[0].block, pieces[-1].block
    if document.line_starts is not None:
        line_start, line_end = document.line_of(start), document.line_of(end - 1)
    else:
        line_start, line_end = first.row, last.row
    return Chunk(document.text[start:end], start, end, path, first.page, line_start, line_end)
