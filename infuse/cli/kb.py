"""`infuse kb`: build and search the knowledge base (add, list, show, remove, sync, search)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from infuse.cli.options import json_option
from infuse.cli.output import console, err_console, print_json
from infuse.errors import ConfigError, DataError

kb_option = click.option(
    "--kb",
    "location",
    envvar="INFUSE_KB",
    default=".infuse/kb",
    show_default=True,
    help="Knowledge base folder (LanceDB) or postgresql:// URL (env INFUSE_KB).",
)


def parse_pairs(pairs: tuple[str, ...], option: str) -> dict[str, object]:
    """`key=value` pairs into a dict (repeated keys collect a list of values)."""
    result: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {pair!r}: expected KEY=VALUE.")
        if key in result:
            previous = result[key]
            result[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            result[key] = value
    return result


def _report_skips(skipped: list[dict[str, str]], warnings: list[dict[str, str]] = ()) -> None:
    for item in skipped:
        err_console.print(
            f"[yellow]Skipped[/yellow] {item['reason']}", highlight=False, markup=True
        )
    for item in warnings:
        err_console.print(
            f"[yellow]Warning[/yellow] {item['warning']}", highlight=False, markup=True
        )


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[..., None]]:
    """An `on_progress(done, total, **info)` callback drawing a bar on stderr (plain lines when
    stderr is not a terminal; nothing when not `enabled`)."""
    if not enabled:
        yield lambda done, total, **info: None
        return
    if not sys.stderr.isatty():

        def plain(done: int, total: int, **info: object) -> None:
            if info.get("stage") == "waiting":
                err_console.print(f"Waiting for another writer of {info.get('item')} to finish...")
            elif total and (done == total or done % 100 == 0):
                err_console.print(f"{label}: {done}/{total}", highlight=False)

        yield plain
        return
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def draw(done: int, total: int, **info: object) -> None:
            if info.get("stage") == "waiting":
                progress.update(
                    task, description=f"Waiting for another writer of {info.get('item')}"
                )
                return
            progress.update(
                task,
                completed=done,
                total=total or None,
                description=f"{label} {info.get('item', '')}",
            )

        yield draw


@click.group()
def kb() -> None:
    """Build and search the knowledge base."""


@kb.command("add")
@click.argument("paths", nargs=-1, required=True)
@kb_option
@click.option(
    "--embedder",
    default=None,
    help="Embedding model: packaged name (minilm) or folder. "
    "Default: the one the knowledge base was built with, else minilm.",
)
@click.option(
    "--text-column", "text_columns", multiple=True, help="CSV/JSONL: column(s) holding the text."
)
@click.option(
    "--metadata-column",
    "metadata_columns",
    multiple=True,
    help="CSV/JSONL: column(s) kept as metadata.",
)
@click.option(
    "--id-column",
    default=None,
    help="CSV/JSONL: column with a unique row id (default: row number).",
)
@click.option("--title-column", default=None, help="CSV/JSONL: column with the row's title.")
@click.option(
    "--meta",
    "meta_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata added to every document.",
)
@click.option(
    "--chunk-tokens",
    type=click.IntRange(min=16),
    default=None,
    help="Chunk size budget in tokens, at least 16 (default 200).",
)
@click.option(
    "--overlap-tokens",
    type=click.IntRange(min=0),
    default=None,
    help="Tokens repeated between chunks, under half the chunk size (default 40).",
)
@json_option
def add(
    paths,
    location,
    embedder,
    text_columns,
    metadata_columns,
    id_column,
    title_column,
    meta_pairs,
    chunk_tokens,
    overlap_tokens,
    as_json,
) -> None:
    """Add files, folders or globs (Markdown, text, HTML, PDF, DOCX, CSV/TSV/JSON/JSONL rows).

    Unchanged files are skipped, changed files replace their chunks.
    """
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.readers import RowOptions
    from infuse.knowledge.reading import find_files

    options = RowOptions(list(text_columns), list(metadata_columns), id_column, title_column)
    metadata = parse_pairs(meta_pairs, "--meta")
    files, _missing = find_files(paths)
    if not files:  # refused before a knowledge base is created for nothing
        raise DataError(
            f"Nothing to add: {', '.join(paths)} matched no files (check the paths; supported: "
            "Markdown, text, reST, AsciiDoc, Org, man pages, HTML, PDF, DOCX, CSV/TSV/JSON/JSONL)."
        )
    with KnowledgeBase(
        location,
        create=True,
        embedder=embedder,
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
    ) as knowledge:
        with progress_bar("Indexing", not as_json) as on_progress:
            report = knowledge.add(
                list(paths), row_options=options, metadata=metadata, on_progress=on_progress
            )
    if as_json:
        print_json(report.to_dict())
        return
    _report_skips(report.skipped, report.warnings)
    console.print(
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed, {len(report.skipped)} skipped ({report.chunks_written} chunks written) "
        f"in {location}"
    )


@kb.command("list")
@kb_option
@json_option
def list_documents(location, as_json) -> None:
    """List the documents in the knowledge base."""
    from rich.table import Table

    from infuse.knowledge.kb import KnowledgeBase

    with KnowledgeBase(location) as knowledge:
        records = knowledge.documents()
    if as_json:
        print_json({"documents": [record.__dict__ for record in records]})
        return
    table = Table("document", "title", "chunks", "hash")
    for record in records:
        table.add_row(record.doc_id, record.title, str(record.chunk_count), record.doc_hash[:12])
    console.print(table)
    console.print(f"{len(records)} documents")


@kb.command("show")
@click.argument("doc_id")
@kb_option
@click.option(
    "--chunks", "show_chunks", is_flag=True, help="Show the stored chunks instead of the text."
)
@json_option
def show(doc_id, location, show_chunks, as_json) -> None:
    """Show one document's full text (or its chunks) by document id (see `infuse kb list`)."""
    from infuse.knowledge.kb import KnowledgeBase

    with KnowledgeBase(location) as knowledge:
        document = knowledge.document(doc_id)
        chunks = knowledge.chunks(doc_id) if show_chunks or as_json else []
    if as_json:
        print_json(
            {
                "doc_id": document.doc_id,
                "source": document.source,
                "title": document.title,
                "metadata": document.metadata,
                "text": document.text,
                "chunks": [
                    {"chunk_id": chunk.chunk_id, "position": chunk.position, "text": chunk.text}
                    for chunk in chunks
                ],
            }
        )
        return
    console.print(f"[bold]{document.title}[/bold]  [cyan]{document.source}[/cyan]")
    if show_chunks:
        for chunk in chunks:
            console.print(f"[bold]chunk {chunk.position + 1}/{chunk.chunk_count}[/bold]")
            console.print(chunk.text, highlight=False, markup=False)
            console.print()
    else:
        console.print(document.text, highlight=False, markup=False)


@kb.command("remove")
@click.argument("targets", nargs=-1, required=True)
@kb_option
@json_option
def remove(targets, location, as_json) -> None:
    """Remove documents by file path or document id."""
    from infuse.knowledge.kb import KnowledgeBase

    with KnowledgeBase(location) as knowledge:
        removed, unknown = knowledge.remove(list(targets))
    if as_json:
        print_json({"removed": removed, "not_found": unknown})
    else:
        for target in unknown:
            err_console.print(f"Not in the knowledge base: {target}", highlight=False)
        console.print(f"{len(removed)} documents removed")
    if unknown and not removed:
        raise DataError(
            f"Nothing removed: {', '.join(unknown)} not in {location} (see `infuse kb list`)."
        )


@kb.command("sync")
@kb_option
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the documents whose sources are gone even when that is most of them "
    "(without it, sync refuses when a drive or folder looks unmounted).",
)
@json_option
def sync(location, prune, as_json) -> None:
    """Re-read every known file and re-crawl every web page: update changed ones, remove those
    that disappeared (web pages: conditional requests; 404/410 or out of scope is gone)."""
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.scrape.refresh import UrlRefresher

    with KnowledgeBase(location) as knowledge:
        with progress_bar("Syncing", not as_json) as on_progress:
            report = knowledge.sync(
                refreshers=[UrlRefresher()], prune=prune, on_progress=on_progress
            )
    if as_json:
        print_json(report.to_dict())
        return
    _report_skips(report.skipped)
    repaired = f", {len(report.repaired)} repaired" if report.repaired else ""
    unchecked = f", {len(report.unchecked)} not checked" if report.unchecked else ""
    console.print(
        f"{len(report.updated)} updated, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged, {len(report.added)} added{repaired}{unchecked}"
    )


@kb.command("search")
@click.argument("question")
@kb_option
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many chunks to show.",
)
@click.option(
    "--mode", type=click.Choice(["hybrid", "bm25", "dense"]), default="hybrid", show_default=True
)
@click.option(
    "--filter",
    "filter_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only chunks whose metadata (or source/doc_id/title) matches; repeat to combine.",
)
@click.option(
    "--reranker", default=None, help="Local cross-encoder folder to rerank the candidates."
)
@click.option(
    "--min-similarity",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    help="Drop chunks below this cosine similarity.",
)
@json_option
def search(question, location, k, mode, filter_pairs, reranker, min_similarity, as_json) -> None:
    """Show the chunks that best match QUESTION, with scores and sources."""
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.rerank import Reranker
    from infuse.knowledge.store import normalize_filters

    filters = parse_pairs(filter_pairs, "--filter")
    normalize_filters(filters)  # a bad filter is refused before the knowledge base is opened
    with KnowledgeBase(location) as knowledge:
        hits = knowledge.search(
            question,
            k=k,
            mode=mode,
            filters=filters,
            reranker=Reranker(reranker) if reranker else None,
            min_similarity=min_similarity,
        )
    if as_json:
        print_json({"query": question, "mode": mode, "results": [hit.to_dict() for hit in hits]})
        return
    if not hits:
        console.print("No matching chunks.")
    for number, hit in enumerate(hits, start=1):
        similarity = f" similarity {hit.similarity:.3f}" if hit.similarity is not None else ""
        console.print(
            f"[bold][{number}][/bold] score {hit.score:.4f}{similarity}  [cyan]{hit.chunk.source}[/cyan]"
        )
        console.print(hit.chunk.text, highlight=False, markup=False)
        console.print()
