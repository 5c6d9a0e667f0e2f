#!/usr/bin/env python3
"""Build the binary documents of the example corpus from their text sources.

    examples/company_src/<name>.pdf.txt   ->  examples/company/<name>.pdf
    examples/company_src/<name>.docx.txt  ->  examples/company/<name>.docx

Source format: the first line "# Title" gives the title, "## Heading" lines are headings, "- item" lines
are list items, and paragraphs are separated by blank lines (lines of one paragraph are joined).

The PDF is written by hand (Helvetica, an exact xref table, as many pages as needed); the DOCX with
python-docx. The output is byte-for-byte identical for identical input: no timestamps in the PDF, fixed
core properties and zip entry dates in the DOCX. Each file is written to a temporary file and then moved
into place. Needs only the standard library and python-docx.
"""

from __future__ import annotations

import datetime
import io
import os
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "company_src"
OUT = HERE / "company"
# The sources the demo corpus needs; any other *.pdf.txt / *.docx.txt found in SRC is built too.
EXPECTED = ("onboarding_guide.pdf.txt", "security_policy.docx.txt")

WRAP = 90  # characters per PDF line
FONT_SIZE = 10
LEADING = 14
PAGE_W, PAGE_H = 612, 792  # US Letter, points
MARGIN_X, TOP_Y, BOTTOM_Y = 72, 740, 60
LINES_PER_PAGE = (TOP_Y - BOTTOM_Y) // LEADING + 1
FIXED_TIME = datetime.datetime(2024, 1, 1, 0, 0, 0)
ZIP_TIME = (2024, 1, 1, 0, 0, 0)


class BuildError(Exception):
    pass


# ---------------------------------------------------------------- source

def parse_source(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """(title, blocks) where a block is ("heading" | "item" | "para", text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    title = None
    blocks: list[tuple[str, str]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            kind = "item" if current[0].startswith("- ") else "para"
            text = " ".join(current)
            blocks.append((kind, text[2:] if kind == "item" else text))
            current.clear()

    for raw in lines:
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("## "):
            flush()
            blocks.append(("heading", line[3:].strip()))
        elif line.startswith("# "):
            flush()
            if title is None:
                title = line[2:].strip()
            else:
                blocks.append(("heading", line[2:].strip()))
        elif line.startswith("- "):
            flush()
            current.append(line)
        else:
            current.append(line)
    flush()
    if not title:
        raise BuildError(f"{path}: the first line must be '# Title'")
    if not blocks:
        raise BuildError(f"{path}: no text after the title")
    return title, blocks


# ---------------------------------------------------------------- PDF

def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    try:
        return b"(" + escaped.encode("cp1252") + b")"
    except UnicodeEncodeError as exc:
        raise BuildError(f"character {text[exc.start]!r} cannot be written with the PDF's standard font") from None


def _pdf_lines(title: str, blocks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(font, text) lines; font "F2" is bold, "" is an empty spacer line."""
    lines: list[tuple[str, str]] = [("F2", title), ("", "")]
    for kind, text in blocks:
        if kind == "heading":
            if lines[-1][0]:
                lines.append(("", ""))
            lines.append(("F2", text))
            continue
        if kind == "item":
            wrapped = textwrap.wrap(text, WRAP - 2) or [""]
            lines += [("F1", ("- " if i == 0 else "  ") + part) for i, part in enumerate(wrapped)]
        else:
            lines += [("F1", part) for part in textwrap.wrap(text, WRAP)]
            lines.append(("", ""))
    while lines and not lines[-1][0]:
        lines.pop()
    return lines


def _page_stream(lines: list[tuple[str, str]]) -> bytes:
    ops = [b"BT", f"{LEADING} TL".encode(), f"{MARGIN_X} {TOP_Y} Td".encode()]
    font = None
    for line_font, text in lines:
        if line_font and line_font != font:
            ops.append(f"/{line_font} {FONT_SIZE} Tf".encode())
            font = line_font
        ops.append(_pdf_string(text) + b" Tj T*" if line_font else b"T*")
    ops.append(b"ET")
    return b"\n".join(ops)


def build_pdf(title: str, blocks: list[tuple[str, str]]) -> tuple[bytes, int]:
    """A valid PDF 1.4 file with byte-exact xref offsets; returns (bytes, pages)."""
    lines = _pdf_lines(title, blocks)
    pages = [lines[i:i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    # Objects: 1 catalog, 2 page tree, 3 Helvetica, 4 Helvetica-Bold, 5 info, then a page and its content per page.
    page_ids = [6 + 2 * i for i in range(len(pages))]
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _pdf_string(title) + b" /Producer (rlsd examples/build_docs.py) >>",
    ]
    for pid, page_lines in zip(page_ids, pages, strict=True):
        stream = _page_stream(page_lines)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Contents {pid + 1} 0 R "
            "/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out), len(pages)


# ---------------------------------------------------------------- DOCX

def build_docx(title: str, blocks: list[tuple[str, str]]) -> bytes:
    try:
        import docx
    except ImportError:
        raise BuildError("python-docx is not installed (pip install python-docx)") from None
    document = docx.Document()
    props = document.core_properties
    props.title = title
    props.author = "Tallowmere Instruments"
    props.last_modified_by = "Tallowmere Instruments"
    props.created = FIXED_TIME
    props.modified = FIXED_TIME
    props.last_printed = FIXED_TIME
    props.revision = 1
    document.add_heading(title, level=1)
    for kind, text in blocks:
        if kind == "heading":
            document.add_heading(text, level=2)
        elif kind == "item":
            document.add_paragraph(text, style="List Bullet")
        else:
            document.add_paragraph(text)
    raw = io.BytesIO()
    document.save(raw)
    # python-docx stamps zip entries with the current time; rewrite them with a fixed date.
    fixed = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(fixed, "w") as dst:
        for entry in src.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(entry.filename))
    return fixed.getvalue()


# ---------------------------------------------------------------- main

def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates the file private; give it normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sources() -> list[Path]:
    if not SRC.is_dir():
        raise BuildError(f"missing source folder {SRC}")
    missing = [name for name in EXPECTED if not (SRC / name).is_file()]
    if missing:
        raise BuildError(f"missing source {SRC / missing[0]}")
    found = sorted(p for p in SRC.iterdir() if p.is_file() and p.name.endswith((".pdf.txt", ".docx.txt")))
    return found


def main() -> int:
    try:
        OUT.mkdir(parents=True, exist_ok=True)
        for source in sources():
            target = OUT / source.name[: -len(".txt")]
            title, blocks = parse_source(source)
            if target.suffix == ".pdf":
                data, pages = build_pdf(title, blocks)
                detail = f"{pages} page{'s' if pages != 1 else ''}"
            else:
                data = build_docx(title, blocks)
                detail = f"{sum(1 for kind, _ in blocks if kind != 'heading')} paragraphs"
            unchanged = target.is_file() and target.read_bytes() == data
            write_atomic(target, data)
            print(f"wrote {target.relative_to(HERE.parent)} ({detail}, {len(data)} bytes{', unchanged' if unchanged else ''})")
    except (BuildError, OSError, UnicodeDecodeError) as exc:
        print(f"build_docs.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
