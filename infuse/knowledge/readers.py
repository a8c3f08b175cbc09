"""Read one file into `Document`s: Markdown, text (reStructuredText, AsciiDoc, Org, man pages,
README-style names), HTML, PDF, DOCX, CSV/TSV and JSON/JSONL rows, gzip-compressed or not.

Every reader returns Markdown-like text (`#` headings, `-` list items, `|` table rows) so one
chunker handles the structure of all of them. A file that cannot be read raises `DataError`
naming it; the knowledge base skips it and says so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.files import parse_jsonl
from infuse.knowledge.cleaning import clean_text, decode_bytes, looks_binary
from infuse.knowledge.documents import Document
from infuse.knowledge.plaintext import (
    adoc_to_text,
    clean_overstrike,
    looks_like_roff,
    org_to_text,
    roff_to_text,
    rst_to_text,
)

MARKDOWN_SUFFIXES = {".md", ".markdown"}
TEXT_SUFFIXES = {".txt", ".text", ".rst", ".rest", ".adoc", ".asciidoc", ".asc", ".org"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
ROW_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json"}
SUPPORTED_SUFFIXES = (
    MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | ROW_SUFFIXES | {".pdf", ".docx"}
)
# Names of plain-text documents that often have no suffix or an odd one (README.Debian, INSTALL.unix).
DOCUMENT_NAMES = {
    "readme",
    "install",
    "news",
    "changes",
    "changelog",
    "copying",
    "license",
    "licence",
    "authors",
    "todo",
    "hacking",
    "faq",
    "notes",
    "thanks",
    "bugs",
    "contributing",
    "history",
    "credits",
    "copyright",
    "manifest",
    "usage",
    "intro",
    "overview",
}
_MAN_SUFFIX = re.compile(r"^\.([1-9][a-z0-9]{0,5}|man|mdoc|n|l)$", re.IGNORECASE)
_MAX_GUNZIP_BYTES = 256 * 1024 * 1024

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass
class RowOptions:
    """How to turn CSV/JSONL rows into documents: which columns are text, metadata, id and title.

    `text_columns` empty means every column that is not metadata, id or title.
    """

    text_columns: list[str] = field(default_factory=list)
    metadata_columns: list[str] = field(default_factory=list)
    id_column: str | None = None
    title_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the options that were set (stored with the chunks for `sync`)."""
        return {key: value for key, value in self.__dict__.items() if value}


def is_man_page_name(name: str) -> bool:
    """`git.1`, `ssl.3ssl`, `foo.man` (a `.gz` already removed)."""
    return bool(_MAN_SUFFIX.match(Path(name).suffix))


def is_document_name(name: str) -> bool:
    """A README/INSTALL/CDB_README-style name: its first word is a usual document name."""
    stem = name.split(".", 1)[0].lower()
    words = [word for word in re.split(r"[_\-]", stem) if word]
    return bool(words) and (words[0] in DOCUMENT_NAMES or words[-1] in DOCUMENT_NAMES)


def check_name(path: Path) -> None:
    """Raise DataError when a file name is not valid UTF-8 (it could not be stored or shown)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(str(path)).decode("utf-8", errors="replace")
        raise DataError(
            f"{shown}: the file name is not valid UTF-8; rename the file (e.g. `convmv -f latin1 "
            "-t utf8`) to read it; skipped."
        ) from None


def read_file(
    path: Path, row_options: RowOptions | None = None, *, warnings: list[dict] | None = None
) -> list[Document]:
    """Read one file into documents (one, or one per row for CSV/JSONL). Raises DataError.

    The type comes from the suffix and, for unknown or missing suffixes, from the content
    (PDF, HTML, roff man page, gzip-compressed text, plain text). `warnings` collects
    `{"path", "warning"}` for files read only in part (a PDF with some scanned pages).
    """
    path = Path(path)
    check_name(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}); skipped.") from error
    if not data:
        raise DataError(f"{path}: empty file (0 bytes); skipped.")
    name = path.name
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(path, data)
        name = name[:-3] if name.lower().endswith(".gz") else name
        if not data:
            raise DataError(f"{path}: empty once uncompressed; skipped.")
    suffix = Path(name).suffix.lower()
    source, stem = str(path), Path(name).stem
    if suffix == ".pdf" or data[:5] == b"%PDF-":
        from infuse.knowledge.pdf_reader import read_pdf

        title, text = read_pdf(path, data, warnings)
        return [Document(text=text, source=source, title=title or stem)]
    if suffix == ".docx":
        return [_read_docx(path, data)]
    if looks_binary(data):
        raise DataError(
            f"{path}: binary file, not text (read: {', '.join(sorted(SUPPORTED_SUFFIXES))}, "
            "man pages and plain text); skipped."
        )
    if suffix in ROW_SUFFIXES:
        return _read_rows(path, decode_bytes(data), row_options or RowOptions())
    if suffix in HTML_SUFFIXES or (
        suffix not in SUPPORTED_SUFFIXES and _HTML_START.match(data[:1024])
    ):
        from infuse.knowledge.html_reader import html_to_text

        title, text = html_to_text(data)
        text = clean_text(text)
        return [Document(text=text, source=source, title=title or _first_heading(text) or stem)]
    text = clean_overstrike(decode_bytes(data))
    if suffix in MARKDOWN_SUFFIXES:
        return [_read_markdown(source, text, stem)]
    if suffix in {".rst", ".rest"}:
        text = rst_to_text(text)
    elif suffix in {".adoc", ".asciidoc", ".asc"}:
        text = adoc_to_text(text)
    elif suffix == ".org":
        text = org_to_text(text)
    elif is_man_page_name(name) or (suffix not in TEXT_SUFFIXES and looks_like_roff(text)):
        title, text = roff_to_text(text)
        return [Document(text=clean_text(text), source=source, title=title or stem)]
    elif _UNDERLINED_TITLE.search(text):  # setext/AsciiDoc/reST titles in a .txt or README
        text = rst_to_text(text)
    text = clean_text(text)
    top = "\n".join([line for line in text.split("\n") if line.strip()][:3])
    title = _first_heading(top) or (stem if suffix in TEXT_SUFFIXES else name)
    return [Document(text=text, source=source, title=title)]


_UNDERLINED_TITLE = re.compile(r"^[^\n]*\w[^\n]*\n(={3,}|-{3,}|~{3,})[ \t]*$", re.MULTILINE)
_HTML_START = re.compile(
    rb"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.IGNORECASE | re.DOTALL
)


def _gunzip(path: Path, data: bytes) -> bytes:
    import gzip
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            inflated = stream.read(_MAX_GUNZIP_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged gzip file ({error}); skipped.") from error
    if len(inflated) > _MAX_GUNZIP_BYTES:
        raise DataError(f"{path}: more than 256 MB once uncompressed; skipped.")
    return inflated


def _read_markdown(source: str, text: str, fallback_title: str) -> Document:
    metadata: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text.replace("\r\n", "\n"))
    if match:
        for line in match.group(1).split("\n"):
            key, sep, value = line.partition(":")
            if sep and key.strip():
                metadata[key.strip()] = value.strip().strip("\"'")
        text = text.replace("\r\n", "\n")[match.end() :]
    text = _HTML_COMMENT.sub("", text)
    text = _MD_LINK.sub(r"\1", _MD_IMAGE.sub(r"\1", text))
    title = metadata.pop("title", "") or _first_heading(text) or fallback_title
    return Document(text=clean_text(text), source=source, title=title, metadata=metadata)


def _first_heading(text: str) -> str:
    for line in text.split("\n"):
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def _table_lines(rows: list[list[str]]) -> list[str]:
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    return ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]


def _read_docx(path: Path, data: bytes) -> Document:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, ValueError, KeyError, OSError) as error:
        raise DataError(f"{path}: not a readable DOCX file ({error}); skipped.") from error
    except Exception as error:  # zipfile.BadZipFile and lxml errors vary by version
        raise DataError(f"{path}: not a readable DOCX file ({error}); skipped.") from error
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [[cell.text.strip() for cell in row.cells] for row in block.rows]
            lines += [""] + _table_lines(rows) + [""]
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name or "") if block.style is not None else ""
        if style == "Title":
            lines += ["", "# " + text, ""]
        elif style.startswith("Heading"):
            level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
            lines += ["", "#" * min(level + 1, 6) + " " + text, ""]
        elif "List" in style:
            lines.append("- " + text)
        else:
            lines += ["", text, ""]
    title = (document.core_properties.title or "").strip()
    text = clean_text("\n".join(lines))
    return Document(text=text, source=str(path), title=title or _first_heading(text) or path.stem)


def _read_rows(path: Path, text: str, options: RowOptions) -> list[Document]:
    rows = list(_iter_rows(path, text))
    documents = []
    for number, row in rows:
        missing = [
            column
            for column in [*options.text_columns, *options.metadata_columns, options.id_column]
            if column and column not in row
        ]
        if missing:
            raise DataError(
                f"{path}, row {number}: no column {', '.join(map(repr, missing))} "
                f"(columns: {', '.join(map(str, row))}). Fix --text-column/--metadata-column/--id-column."
            )
        reserved = {*options.metadata_columns, options.id_column, options.title_column}
        text_columns = options.text_columns or [column for column in row if column not in reserved]
        values = [(column, _cell(row[column])) for column in text_columns]
        if len(values) == 1:
            body = values[0][1]
        else:
            body = "\n".join(f"{column}: {value}" for column, value in values if value)
        key = _cell(row[options.id_column]) if options.id_column else str(number)
        title_value = _cell(row.get(options.title_column, "")) if options.title_column else ""
        documents.append(
            Document(
                text=clean_text(body),
                source=str(path),
                title=title_value or f"{path.stem} {key}",
                metadata={column: row[column] for column in options.metadata_columns},
                doc_id=f"{path}#{key}",
                reader_options=options.to_dict(),
            )
        )
    seen: set[str] = set()
    for document in documents:
        if document.doc_id in seen:
            raise DataError(
                f"{path}: id {document.doc_id.split('#', 1)[1]!r} appears twice; ids must be unique."
            )
        seen.add(document.doc_id)
    return documents


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _iter_rows(path: Path, text: str):
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv"}:
        delimiter = "\t" if suffix == ".tsv" else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        if not reader.fieldnames:
            raise DataError(f"{path}: no header row; the first line must name the columns.")
        for number, row in enumerate(reader, start=1):
            yield number, {key: value for key, value in row.items() if key is not None}
        return
    if suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}: invalid JSON ({error.msg} at line {error.lineno})."
            ) from error
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError(f"{path}: expected a JSON list of objects (one document per object).")
        yield from enumerate(records, start=1)
        return
    yield from parse_jsonl(text, path)
