"""Read files into `Document`s: Markdown, text, HTML, PDF, DOCX, CSV/TSV and JSON/JSONL rows.

Every reader returns Markdown-like text (`#` headings, `-` list items, `|` table rows) so one
chunker handles the structure of all of them. A file that cannot be read raises `DataError`
naming it; the knowledge base skips it and says so.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import DataError
from infuse.knowledge.cleaning import clean_text, decode_bytes, looks_binary, remove_repeated_lines
from infuse.knowledge.documents import Document

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
ROW_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | ROW_SUFFIXES | {".pdf", ".docx"}

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


def read_file(path: Path, row_options: RowOptions | None = None) -> list[Document]:
    """Read one file into documents (one, or one per row for CSV/JSONL). Raises DataError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}); skipped.") from error
    suffix = path.suffix.lower()
    source = str(path)
    if suffix == ".pdf":
        return [_read_pdf(path, data)]
    if suffix == ".docx":
        return [_read_docx(path, data)]
    if looks_binary(data):
        raise DataError(
            f"{path}: binary file, not text (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}); skipped."
        )
    text = decode_bytes(data)
    if suffix in HTML_SUFFIXES:
        return [_read_html(source, text, path.stem)]
    if suffix in ROW_SUFFIXES:
        return _read_rows(path, text, row_options or RowOptions())
    if suffix in {".md", ".markdown"}:
        return [_read_markdown(source, text, path.stem)]
    return [Document(text=clean_text(text), source=source, title=path.stem)]


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


def _read_html(source: str, html: str, fallback_title: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(
        ["script", "style", "nav", "header", "footer", "aside", "form", "noscript", "svg"]
    ):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    for element in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "table"]):
        if element.find_parent(["table", "pre"]) or (
            element.name == "p" and element.find_parent("li")
        ):
            continue
        if element.name.startswith("h"):
            lines += ["", "#" * int(element.name[1]) + " " + element.get_text(" ", strip=True), ""]
        elif element.name == "li":
            lines.append("- " + element.get_text(" ", strip=True))
        elif element.name == "table":
            lines += (
                [""]
                + _table_lines(
                    [
                        [cell.get_text(" ", strip=True) for cell in row.find_all(["td", "th"])]
                        for row in element.find_all("tr")
                    ]
                )
                + [""]
            )
        elif element.name == "pre":
            lines += ["", "```", element.get_text(), "```", ""]
        else:
            lines += ["", element.get_text(" ", strip=True), ""]
    text = clean_text("\n".join(lines))
    if not title:
        title = _first_heading(text) or fallback_title
    return Document(text=text, source=source, title=title)


def _table_lines(rows: list[list[str]]) -> list[str]:
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    return ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]


def _read_pdf(path: Path, data: bytes) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DataError(f"{path}: encrypted PDF (a password is needed); skipped.")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, OSError) as error:
        raise DataError(f"{path}: not a readable PDF ({error}); skipped.") from error
    pages = remove_repeated_lines([clean_text(page) for page in pages])
    text = clean_text("\n\n".join(pages))
    return Document(text=text, source=str(path), title=str(title).strip() or path.stem)


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
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {number}: invalid JSON ({error.msg}). Fix or remove that line."
            ) from error
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line.")
        yield number, record
