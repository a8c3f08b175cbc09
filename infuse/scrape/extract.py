"""`extract_pages`: records from URLs or saved pages, by schema (a model) or selectors; written
as JSONL, CSV, or dataset rows that `infuse data` reads."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.files import write_text_atomic
from infuse.knowledge.documents import Document
from infuse.scrape.fetch import FetchConfig, Fetcher
from infuse.scrape.structured import ExtractionResult, extract_record

PAGE_SUFFIXES = {".html", ".htm", ".xhtml", ".md", ".markdown", ".txt"}


@dataclass
class Page:
    """One page to extract from: where it came from, its HTML (if any) and its main text."""

    url: str
    html: str | None
    text: str


@dataclass
class ExtractReport:
    """Every page's record, and the targets that gave no page (with the reason)."""

    results: list[ExtractionResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        flagged = sum(1 for result in self.results if result.flags)
        return {
            "records": [result.to_dict() for result in self.results],
            "skipped": self.skipped,
            "counts": {
                "pages": len(self.results),
                "with_data": sum(1 for result in self.results if result.data is not None),
                "flagged": flagged,
                "skipped": len(self.skipped),
            },
        }


def _local_pages(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(
            path
            for path in target.rglob("*")
            if path.is_file() and path.suffix.lower() in PAGE_SUFFIXES
        )
    return [target]


def load_pages(targets: list[str], fetcher: Fetcher | None, skipped: list[dict[str, str]]):
    """Yield a `Page` per URL (fetched) or saved file (a folder: its HTML/Markdown/text files)."""
    from infuse.scrape.content import page_documents, parse_html

    for target in targets:
        if target.startswith(("http://", "https://")):
            fetched = fetcher.fetch(target)
            if not fetched.ok:
                skipped.append({"path": target, "reason": f"{target}: {fetched.skip_reason}"})
                continue
            documents, _parsed = page_documents(fetched)
            html = fetched.text() if fetched.kind == "html" else None
            text = "\n\n".join(document.text for document in documents)
            yield Page(fetched.final_url, html, text)
            continue
        path = Path(target).expanduser()
        if not path.exists():
            skipped.append({"path": target, "reason": f"{target}: no such URL, file or folder"})
            continue
        for file in _local_pages(path):
            raw = file.read_text(encoding="utf-8", errors="replace")
            if file.suffix.lower() in (".html", ".htm", ".xhtml"):
                parsed = parse_html(raw, file.resolve().as_uri())
                yield Page(str(file), raw, parsed.markdown)
            else:
                yield Page(str(file), None, raw)


def extract_pages(
    targets: list[str],
    *,
    schema: dict[str, Any] | None = None,
    model: Any = None,
    selectors: dict[str, dict[str, Any]] | None = None,
    fetch_config: FetchConfig | None = None,
    max_retries: int = 2,
    chunk_chars: int = 6000,
    max_new_tokens: int = 1024,
    on_progress: Callable[..., None] | None = None,
) -> ExtractReport:
    """A record per page: from `selectors` (no model) or from `schema` through `model`."""
    from infuse.scrape.selecting import select_record

    if (schema is None) == (selectors is None):
        raise ConfigError("Give exactly one of --schema (with a model) or --selectors.")
    if schema is not None and model is None:
        raise ConfigError("--schema needs a model (--model, or --base-url for a server).")
    report = ExtractReport()
    needs_fetch = any(target.startswith(("http://", "https://")) for target in targets)
    fetcher = Fetcher(fetch_config) if needs_fetch else None
    try:
        for page in load_pages(targets, fetcher, report.skipped):
            if selectors is not None:
                if page.html is None:
                    report.skipped.append(
                        {"path": page.url, "reason": f"{page.url}: selectors need an HTML page"}
                    )
                    continue
                result = select_record(page.html, page.url, selectors)
            else:
                result = extract_record(
                    page.text, url=page.url, schema=schema, model=model, max_retries=max_retries,
                    chunk_chars=chunk_chars, max_new_tokens=max_new_tokens,
                )
            report.results.append(result)
            if on_progress:
                on_progress(
                    len(report.results), len(report.results), url=page.url, state="extracted"
                )
    finally:
        if fetcher is not None:
            fetcher.close()
    return report


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}" if prefix else key))
        return flat
    if isinstance(value, list):
        return {prefix: json.dumps(value, ensure_ascii=False)}
    return {prefix: value}


def dataset_rows(results: list[ExtractionResult]) -> list[dict[str, Any]]:
    """One row per record with data: `url` and the record's fields (nested objects kept)."""
    return [
        {"url": result.url, **result.data}
        if isinstance(result.data, dict)
        else {"url": result.url, "data": result.data}
        for result in results
        if result.data is not None
    ]


def record_documents(results: list[ExtractionResult]) -> list[Document]:
    """Records with data as knowledge-base documents: the fields as a Markdown list.

    The source is `record:<url>` (a plain id, which `kb sync` never removes or re-reads as a
    page); the page URL is kept in the metadata.
    """
    documents = []
    for result in results:
        if result.data is None:
            continue
        flat = (
            _flat(result.data)
            if isinstance(result.data, dict)
            else {"data": json.dumps(result.data)}
        )
        lines = [
            f"- {key}: {value}" for key, value in flat.items() if value not in (None, "", "[]")
        ]
        if not lines:
            continue
        documents.append(
            Document(
                text="\n".join(lines),
                source=f"record:{result.url}",
                title=str(flat.get("name") or flat.get("title") or result.url),
                metadata={"url": result.url},
            )
        )
    return documents


def write_records(results: list[ExtractionResult], path: str | Path, *, rows: bool = False) -> Path:
    """Write records to .jsonl (whole records, or dataset rows when `rows`) or .csv (flattened)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        flat_rows = [
            {
                "url": result.url,
                **_flat(result.data or {}),
                "flags": json.dumps(result.flags, ensure_ascii=False) if result.flags else "",
                "error": result.error or "",
            }
            for result in results
        ]
        columns = list(dict.fromkeys(key for row in flat_rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat_rows)
        return write_text_atomic(path, buffer.getvalue())
    if suffix != ".jsonl":
        raise ConfigError(f"{path}: write records to a .jsonl or .csv file.")
    lines = dataset_rows(results) if rows else [result.to_dict() for result in results]
    return write_text_atomic(
        path, "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
    )
