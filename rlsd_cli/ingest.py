"""Read a folder of documents into plain text (and chat examples from JSONL), skipping what cannot be read.

Every file is either read or skipped with a one-line reason; nothing is ever written next to the data.
Parsers: BeautifulSoup (HTML), pypdf (PDF), python-docx (DOCX); Markdown, reStructuredText and text are
read as UTF-8. JSONL/JSON records may hold `text` (a document), `messages` (a chat example) or
`prompt`/`completion` (a chat example).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chat_format import validate_messages
from .errors import BadInputError
from .fsutil import parse_json

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".jsonl", ".json"}
MAX_FILE_BYTES = 50 * 1024 * 1024  # one file; a bigger one is skipped with its reason (split it)


@dataclass
class Document:
    path: str  # relative to the corpus folder
    title: str
    text: str


@dataclass
class Corpus:
    root: Path
    documents: list[Document] = field(default_factory=list)
    chats: list[list[dict[str, str]]] = field(default_factory=list)  # conversations found in JSONL files
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    files_read: int = 0
    duplicates: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "folder": str(self.root),
            "files_read": self.files_read,
            "documents": len(self.documents),
            "chat_examples_in_data": len(self.chats),
            "duplicates_dropped": self.duplicates,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "characters": sum(len(d.text) for d in self.documents),
        }


class Skip(Exception):
    """This file cannot be used; the message is the reason."""


def normalize_whitespace(text: str) -> str:
    """Collapse runs of spaces inside lines and of blank lines, keeping paragraph breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [re.sub(r"[ \t\f\v]+", " ", line).strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise Skip("empty file")
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # UTF-32's first:
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # FF FE starts both
        if data.startswith(bom):  # Windows editors save "Unicode" so
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise Skip(f"starts as {encoding.upper()} but is not (invalid byte at offset {exc.start}); re-save "
                           "it as UTF-8") from None
    if b"\x00" in data[:8192]:
        raise Skip("binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Skip(f"not UTF-8 (invalid byte at offset {exc.start}); re-save it as UTF-8") from None


def _title_from_markdown(text: str, fallback: str) -> str:
    for line in text.splitlines():
        match = re.match(r"^#{1,3}\s+(.+?)\s*#*\s*$", line)
        if match:
            return match.group(1).strip()
        if line.strip():
            break
    return fallback


def _read_html(path: Path) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_utf8(path), "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else None
    for tag in soup(["script", "style", "nav", "noscript", "template", "head"]):
        tag.decompose()
    blocks = []
    for element in soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "th", "pre", "blockquote", "dt", "dd"]):
        if element.find(["p", "li", "td"]):  # a container: its children are visited on their own
            continue
        text = element.get_text(" ", strip=True)
        if text:
            blocks.append(text)
    body = "\n\n".join(blocks) if blocks else soup.get_text("\n", strip=True)
    return body, title


def _read_pdf(path: Path) -> tuple[str, str | None]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs each repair it attempts on a damaged file; the one-line skip reason below says it instead.
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise Skip("encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or None
    except Skip:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise Skip(f"unreadable PDF ({type(exc).__name__}: {str(exc)[:80]})") from None
    except Exception as exc:  # pypdf raises many internal types on corrupt input
        raise Skip(f"unreadable PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages), title


def _read_docx(path: Path) -> tuple[str, str | None]:
    import zipfile

    import docx

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise Skip(f"unreadable DOCX ({type(exc).__name__})") from None
    except Exception as exc:
        raise Skip(f"unreadable DOCX ({type(exc).__name__})") from None
    paragraphs = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            paragraphs.append(" | ".join(cell.text.strip() for cell in row.cells))
    title = document.core_properties.title or None
    if not title:
        for p in document.paragraphs:
            if p.style is not None and p.style.name.lower().startswith(("title", "heading")) and p.text.strip():
                title = p.text.strip()
                break
    return "\n\n".join(paragraphs), title


def _json_records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) pairs from a .jsonl file (one per line) or a .json file (an object or a list)."""
    text = _read_utf8(path)
    if path.suffix == ".json":
        try:
            data = parse_json(text)
        except ValueError as exc:
            raise Skip(f"not valid JSON ({exc})") from None
        data = data if isinstance(data, list) else [data]
        return [(f"{path}[{i}]", record) for i, record in enumerate(data)]
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", parse_json(line)))
        except ValueError as exc:
            raise Skip(f"line {number} is not valid JSON ({exc}); fix or delete that line") from None
    return records


def _read_records(path: Path, corpus: Corpus, relative: str) -> None:
    # Collected apart and added only when the whole file is good: a skipped file contributes nothing.
    documents: list[Document] = []
    chats: list[list[dict[str, str]]] = []
    found = 0
    for where, record in _json_records(path):
        if not isinstance(record, dict):
            raise Skip(f"{where.rsplit('/', 1)[-1]}: expected a JSON object with 'text', 'messages' or 'prompt'/'completion'")
        if isinstance(record.get("text"), str) and record["text"].strip():
            title = record.get("title") if isinstance(record.get("title"), str) else relative
            documents.append(Document(path=f"{relative}#{found + 1}", title=title, text=normalize_whitespace(record["text"])))
        elif "messages" in record:
            try:
                chats.append(validate_messages(record["messages"], where))
            except BadInputError as exc:
                raise Skip(str(exc).split(": ", 1)[-1] + f" (at {where.rsplit('/', 1)[-1]})") from None
        elif isinstance(record.get("prompt"), str) and isinstance(record.get("completion"), str):
            chats.append([
                {"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": record["completion"]},
            ])
        else:
            raise Skip(f"{where.rsplit('/', 1)[-1]}: a record needs 'text', 'messages' or 'prompt'+'completion'")
        found += 1
    if not found:
        raise Skip("no records")
    corpus.documents.extend(documents)
    corpus.chats.extend(chats)


def read_file(path: Path, corpus: Corpus, relative: str) -> None:
    """Add one file's content to the corpus or raise Skip."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise Skip(f"unsupported file type '{suffix or path.name}' (supported: {', '.join(sorted(SUPPORTED))})")
    size = path.stat().st_size
    if size == 0:
        raise Skip("empty file")
    if size > MAX_FILE_BYTES:
        raise Skip(f"{size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB one file may be; split it into "
                   "smaller files")
    if suffix in {".jsonl", ".json"}:
        _read_records(path, corpus, relative)
        return
    title = None
    if suffix in TEXT_SUFFIXES:
        text = _read_utf8(path)
        if suffix in {".md", ".markdown"}:
            title = _title_from_markdown(text, relative)
    elif suffix in HTML_SUFFIXES:
        text, title = _read_html(path)
    elif suffix == ".pdf":
        text, title = _read_pdf(path)
    else:
        text, title = _read_docx(path)
    text = normalize_whitespace(text)
    if not text:
        raise Skip("no text in it")
    corpus.documents.append(Document(path=relative, title=title or relative, text=text))


def read_corpus(folder: str | Path, strict: bool = False) -> Corpus:
    root = Path(folder)
    if not root.exists():
        raise BadInputError(f"{root}: no such folder; pass the folder that holds your documents")
    unlisted: list[tuple[str, str]] = []
    hidden = 0
    listed = not root.is_file()
    if root.is_file():
        files = [root]
        root = root.parent
    else:
        files, unlisted, hidden = _list_files(root)
    corpus = Corpus(root=root)
    for relative, reason in unlisted:
        if strict:
            raise BadInputError(f"{root / relative}: {reason} (--strict stops at the first unusable file)")
        corpus.skipped.append((relative, reason))
    seen: set[str] = set()
    for path in files:
        relative = str(path.relative_to(root))
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:  # bytes the file system holds but UTF-8 cannot: the name would reach the tokenizer
            shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            if strict:
                raise BadInputError(f"{root / shown}: its name is not valid UTF-8; rename the file "
                                    "(--strict stops at the first unusable file)") from None
            corpus.skipped.append((shown, "its name is not valid UTF-8; not read (rename the file)"))
            continue
        before = len(corpus.documents)
        try:
            if listed and path.is_symlink():  # a file passed by name is read wherever its link leads
                _check_link(path, root)
            if not path.exists():
                raise Skip("a broken symbolic link (its target is gone)")
            if not path.is_file():  # opening a FIFO would wait forever
                raise Skip("not a regular file (a pipe, socket or device); not read")
            read_file(path, corpus, relative)
            corpus.files_read += 1
        except Skip as skip:
            if strict:
                raise BadInputError(f"{path}: {skip} (--strict stops at the first unusable file)") from None
            corpus.skipped.append((relative, str(skip)))
            continue
        except OSError as exc:
            if strict:
                raise BadInputError(f"{path}: cannot read it ({exc.strerror})") from None
            corpus.skipped.append((relative, f"cannot read it ({exc.strerror})"))
            continue
        for document in corpus.documents[before:]:
            digest = hashlib.sha256(document.text.encode()).hexdigest()
            if digest in seen:
                corpus.documents.remove(document)
                corpus.duplicates += 1
            seen.add(digest)
    if not corpus.documents and not corpus.chats:
        reasons = "; ".join(f"{p}: {r}" for p, r in corpus.skipped[:3])
        ignored = f"; {hidden} hidden file(s) or folder(s) (names starting with '.') are not read" if hidden else ""
        fix = (f"; supported types: {', '.join(sorted(SUPPORTED))}" if not files
               else "; fix or replace the files named, or pass the folder that holds your documents")
        raise BadInputError(f"{root}: no usable text in {len(files)} file(s)" + (f" ({reasons})" if reasons else "")
                            + ignored + fix)
    return corpus


def _list_files(root: Path) -> tuple[list[Path], list[tuple[str, str]], int]:
    """The files under `root` (hidden names left out), what could not be listed and why, and how many hidden
    entries were left out. `Path.rglob` would skip an unreadable folder and a linked folder without a word."""
    files, unlisted, hidden = [], [], 0

    def unreadable(error: OSError) -> None:
        unlisted.append((str(Path(error.filename).relative_to(root)), f"cannot list this folder ({error.strerror})"))

    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        here = Path(folder)
        hidden += sum(1 for name in subfolders + names if name.startswith("."))
        for name in sorted(subfolders):
            if not name.startswith(".") and (here / name).is_symlink():
                unlisted.append((str((here / name).relative_to(root)),
                                 "a symbolic link to a folder; not followed (copy the folder in if it belongs)"))
        subfolders[:] = sorted(n for n in subfolders if not n.startswith(".") and not (here / n).is_symlink())
        files += [here / name for name in names if not name.startswith(".")]
    return sorted(files), unlisted, hidden


def _check_link(path: Path, root: Path) -> None:
    """A linked file is read only when it stays inside the folder: a link to /etc/passwd is not a document."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise Skip("a broken symbolic link (its target is gone)") from None
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11's "Symlink loop"
        raise Skip("a symbolic link that leads back to itself (a loop); remove it") from None
    if not target.is_relative_to(root.resolve()):
        raise Skip(f"a symbolic link to {target}, outside the folder; not read (copy the file in if it belongs)")
