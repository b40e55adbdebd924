"""Caps on what one document may cost to read, so a hostile file is skipped instead of eating the
machine: a few hundred kilobytes of .docx or PDF can inflate to gigabytes (a "zip bomb").

Each cap is checked before the work it bounds: a .docx's zip directory before anything is
inflated, a PDF page's content streams with a bounded decompression before pypdf decodes them,
a text file's characters before it is parsed, and extracted text and chunks as they grow.
A file over a cap raises `OverLimit`, which names the cap and the `[knowledge.limits]` setting
that raises it; the rest of an add goes on.

    [knowledge.limits]
    max_file_mb = 100        # a file on disk or uploaded
    max_unpacked_mb = 200    # a .docx's members or a PDF's page contents, decompressed, together
    max_member_mb = 50       # one .docx member or one PDF stream, decompressed
    max_ratio = 200          # decompressed : compressed, for a .docx member over 1 MB
    max_members = 5000       # entries in a .docx
    max_pages = 5000         # pages of a PDF
    max_chars = 5000000      # characters of text extracted from one file
    max_chunks = 20000       # chunks from one file
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from pathlib import Path

from ...errors import UserError

MB = 1_000_000
RATIO_FLOOR = 1 * MB  # small members may compress very well (repeated styles); only big ones are judged by ratio


class OverLimit(UserError):
    """A file over one of the caps: it is skipped, with this message as the reason."""


@dataclass(frozen=True)
class ReadLimits:
    max_file_bytes: int = 100 * MB
    max_unpacked_bytes: int = 200 * MB
    max_member_bytes: int = 50 * MB
    max_ratio: int = 200
    max_members: int = 5_000
    max_pages: int = 5_000
    max_chars: int = 5_000_000
    max_chunks: int = 20_000

    # The names people write in [knowledge.limits]: sizes in MB, the rest as counts.
    SETTINGS = {"max_file_mb": "max_file_bytes", "max_unpacked_mb": "max_unpacked_bytes",
                "max_member_mb": "max_member_bytes", "max_ratio": "max_ratio", "max_members": "max_members",
                "max_pages": "max_pages", "max_chars": "max_chars", "max_chunks": "max_chunks"}

    @classmethod
    def from_table(cls, table: dict) -> ReadLimits:
        unknown = set(table) - set(cls.SETTINGS)
        if unknown:
            raise ValueError(f"unknown [knowledge.limits] setting(s): {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(cls.SETTINGS)})")
        values = {}
        for setting, value in table.items():
            number = float(value) * MB if setting.endswith("_mb") else int(value)
            if number <= 0:
                raise ValueError(f"[knowledge.limits] {setting} must be more than 0")
            values[cls.SETTINGS[setting]] = int(number)
        return cls(**values)

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) <= 0:
                raise ValueError(f"{item.name} must be more than 0")


def over(what: str, found: str, limit: str, setting: str) -> OverLimit:
    return OverLimit(f"{what} ({found}; the limit is {limit}); skipped so a hostile or broken file cannot exhaust "
                     f"memory. If the file is genuine, raise {setting} in [knowledge.limits] of plugdeck.toml")


def megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB" if size < 10 * MB else f"{size / MB:.0f} MB"


def check_file_size(size: int, limits: ReadLimits) -> None:
    if size > limits.max_file_bytes:
        raise over("the file is too large", megabytes(size), megabytes(limits.max_file_bytes), "max_file_mb")


def check_characters(count: int, limits: ReadLimits, what: str = "the text is too long") -> None:
    if count > limits.max_chars:
        raise over(what, f"more than {count:,} characters", f"{limits.max_chars:,}", "max_chars")


def check_chunks(count: int, limits: ReadLimits) -> None:
    if count > limits.max_chunks:
        raise over("it makes too many chunks", f"{count:,}", f"{limits.max_chunks:,}", "max_chunks")


def check_zip(path: Path, limits: ReadLimits) -> None:
    """Judge a zip container (.docx) by its directory alone, before any member is inflated.

    zipfile never returns more bytes than a member's recorded size (a member that inflates to more
    fails its CRC check), so the recorded sizes bound what reading it can cost."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        from .readers import ReadError

        raise ReadError(f"not a valid .docx file (damaged, or an old .doc renamed?): {exc}") from None
    if len(members) > limits.max_members:
        raise over("the .docx has too many parts", f"{len(members):,}", f"{limits.max_members:,}", "max_members")
    total = 0
    for member in members:
        size = member.file_size
        if size > limits.max_member_bytes:
            raise over(f"the .docx part {member.filename} inflates too much", megabytes(size),
                       megabytes(limits.max_member_bytes), "max_member_mb")
        if size > RATIO_FLOOR and size > limits.max_ratio * max(member.compress_size, 1):
            ratio = size / max(member.compress_size, 1)
            raise over(f"the .docx part {member.filename} is compressed suspiciously well",
                       f"{ratio:,.0f} to 1, {megabytes(size)} from {member.compress_size:,} bytes",
                       f"{limits.max_ratio} to 1", "max_ratio")
        total += size
    if total > limits.max_unpacked_bytes:
        raise over("the .docx inflates too much", megabytes(total), megabytes(limits.max_unpacked_bytes),
                   "max_unpacked_mb")


class InflateBudget:
    """Decompressed bytes left for one document; PDF page contents are measured against it before
    pypdf decodes them."""

    def __init__(self, limits: ReadLimits):
        self.limits = limits
        self.left = limits.max_unpacked_bytes
        self.used = 0  # bytes inflated while measuring, for tests and reports
        self.seen: set[int] = set()  # streams already charged (a form drawn on every page counts once)

    def measure_flate(self, data: bytes) -> int:
        """The inflated size of a FlateDecode stream, never inflating past what the caps allow."""
        cap = min(self.left, self.limits.max_member_bytes)
        inflater = zlib.decompressobj()
        size = 0
        pending = data
        while pending and not inflater.eof:
            try:
                out = inflater.decompress(pending, cap - size + 1)
            except zlib.error:
                return size  # damaged: pypdf decides what to make of it (within its own caps)
            size += len(out)
            if size > cap:
                self.used += size
                self._refuse(size)
            pending = inflater.unconsumed_tail
        self.used += size
        return size

    def spend(self, size: int) -> None:
        if size > self.limits.max_member_bytes or size > self.left:
            self._refuse(size)
        self.left -= size

    def _refuse(self, size: int) -> None:
        if size > self.limits.max_member_bytes:
            raise over("a PDF stream inflates too much", f"over {megabytes(self.limits.max_member_bytes)}",
                       megabytes(self.limits.max_member_bytes), "max_member_mb")
        raise over("the PDF's pages inflate too much", f"over {megabytes(self.limits.max_unpacked_bytes)}",
                   megabytes(self.limits.max_unpacked_bytes), "max_unpacked_mb")
