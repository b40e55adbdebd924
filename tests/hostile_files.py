"""Hostile documents built in the test, small on disk: tens of megabytes of zeros deflate to tens
of kilobytes. Used by the knowledge tests and the server's upload test (issue 11 item 4)."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

MB = 1_000_000
ZEROS = b"0" * MB


def docx_bomb(path: Path, megabytes: int, member: str = "word/document.xml", zip64: bool = True) -> Path:
    """A real .docx whose document.xml carries `megabytes` MB of zeros in an XML comment."""
    import docx

    document = docx.Document()
    document.add_heading("Benefits", level=1)
    document.add_paragraph("The company pays half of the gym membership.")
    document.save(str(path.with_suffix(".seed.docx")))
    with zipfile.ZipFile(path.with_suffix(".seed.docx")) as seed:
        parts = {info.filename: seed.read(info) for info in seed.infolist()}
    path.with_suffix(".seed.docx").unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for name, data in parts.items():
            if name != member:
                bomb.writestr(name, data)
        head, body, rest = parts[member].partition(b"<w:body>")
        with bomb.open(member, "w", force_zip64=zip64) as out:
            out.write(head + body + b"<!--")
            for _ in range(megabytes):
                out.write(ZEROS)
            out.write(b"-->" + rest)
    return path


def _pdf(path: Path, objects: dict[int, bytes]) -> Path:
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in range(1, size))
    out += f"trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def _flate(head: bytes, megabytes: int) -> bytes:
    packer = zlib.compressobj(9)
    data = packer.compress(head)
    for _ in range(megabytes):
        data += packer.compress(b" " * MB)
    return data + packer.flush()


def pdf_form_bomb(path: Path, megabytes: int) -> Path:
    """A PDF whose small page content draws a form XObject that inflates to `megabytes` MB."""
    form = _flate(b"BT /F1 12 Tf 72 720 Td (Inside the form) Tj ET\n", megabytes)
    page = b"q /Fm1 Do Q"
    return _pdf(path, {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> "
           b"/XObject << /Fm1 6 0 R >> >> /Contents 5 0 R >>",
        5: b"<< /Length %d >>\nstream\n" % len(page) + page + b"\nendstream",
        6: b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
           b"/Length %d /Filter /FlateDecode >>\nstream\n" % len(form) + form + b"\nendstream",
    })


def pdf_bomb(path: Path, megabytes_per_page: list[int]) -> Path:
    """A PDF whose pages each draw one line of text, followed by megabytes of spaces, all FlateDecode."""
    pages = len(megabytes_per_page)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(pages))}] /Count {pages} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for i, size in enumerate(megabytes_per_page):
        stream = _flate(f"BT /F1 12 Tf 72 720 Td (Page {i + 1} says hello) Tj ET\n".encode(), size)
        objects[4 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                              f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>").encode()
        objects[5 + 2 * i] = (f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream
                              + b"\nendstream")
    return _pdf(path, objects)


