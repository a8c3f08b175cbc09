"""`KnowledgeBase`: the Python twin of `infuse kb ...` — add, sync, remove, list, show and search.

Ingest is incremental and crash-safe: each document's content hash is stored with its chunks;
an unchanged document is skipped, a changed one has its chunks replaced, and each batch of
documents is written in one atomic store commit. A killed ingest leaves whole documents only,
and running it again picks up where it stopped (finished documents are unchanged).

Writers hold the store's lock for the whole add/sync/remove, so two runs at once take turns and
the second finds the first one's documents unchanged. Opening a location that holds no
knowledge base is an error unless `create=True` (what `kb add` passes). Progress goes to an
`on_progress(done, total, **info)` callback; nothing here prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.closing import Closing
from infuse.errors import ConfigError, DataError
from infuse.knowledge.chunking import chunk_document, heading_prefix
from infuse.knowledge.documents import Chunk, Document, DocumentRecord, SearchHit
from infuse.knowledge.embeddings import DEFAULT_EMBEDDER, Embedder
from infuse.knowledge.readers import RowOptions
from infuse.knowledge.reading import find_files
from infuse.knowledge.retrieval import SearchSettings, retrieve
from infuse.knowledge.sources import (
    EXTRA_METADATA,
    FILE,
    SAFE_SHARE,
    TEXT,
    FileRefresher,
    RefreshResult,
    SourceRefresher,
    SyncRefusedError,
    check_removal,
    read_source_file,
    source_kind,
)
from infuse.knowledge.store import ChunkStore, is_database_url
from infuse.knowledge.stores import open_store

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 40
MIN_CHUNK_TOKENS = 16
ProgressCallback = Callable[..., None]
__all__ = ["IngestReport", "KnowledgeBase", "SyncRefusedError", "check_chunking"]


@dataclass
class IngestReport:
    """What an add or sync did (document ids per outcome; skipped files with the reason)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks_written: int = 0
    repaired: list[str] = field(
        default_factory=list
    )  # documents whose duplicate chunks sync deleted
    unchecked: list[str] = field(default_factory=list)  # documents of a kind no refresher checks
    warnings: list[dict[str, str]] = field(default_factory=list)  # files read only in part

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _leave_out(
    folder: Path, files: list[Path], skipped: list[dict[str, str]]
) -> tuple[list[Path], list[dict[str, str]]]:
    """The knowledge base's own folder is never indexed: drop its files (and the skip notes
    about them) and say so once."""
    kept = [file for file in files if not file.is_relative_to(folder)]
    notes = [
        item for item in skipped if not Path(os.path.realpath(item["path"])).is_relative_to(folder)
    ]
    if len(kept) < len(files) or len(notes) < len(skipped):
        notes.append(
            {
                "path": str(folder),
                "reason": f"{folder}: the knowledge base's own folder; not indexed.",
            }
        )
    return kept, notes


def check_chunking(chunk_tokens: int, overlap_tokens: int) -> None:
    """Raise ConfigError unless 16 <= chunk_tokens and 0 <= overlap_tokens < chunk_tokens / 2."""
    if not isinstance(chunk_tokens, int) or chunk_tokens < MIN_CHUNK_TOKENS:
        raise ConfigError(
            f"Chunk size {chunk_tokens!r}: need a whole number of at least {MIN_CHUNK_TOKENS} tokens "
            f"(e.g. --chunk-tokens {DEFAULT_CHUNK_TOKENS})."
        )
    if not isinstance(overlap_tokens, int) or not 0 <= overlap_tokens < chunk_tokens // 2:
        raise ConfigError(
            f"Overlap {overlap_tokens!r} with chunk size {chunk_tokens}: need 0 <= overlap < "
            f"{chunk_tokens // 2} (half the chunk size), e.g. --overlap-tokens {chunk_tokens // 5}."
        )


class KnowledgeBase(Closing):
    """A knowledge base at a folder (LanceDB) or a `postgresql://` URL.

    The location must hold a knowledge base already, unless `create=True` (then an empty one
    is made there; a folder of other files is refused). `embedder` is a packaged name
    (`minilm`), a sentence-transformers folder, or a loaded `Embedder`; by default the one the
    knowledge base was built with. `commit_chunks` is how many chunks are embedded and
    committed together (one atomic write). Raises StoreError for a missing or damaged store,
    ConfigError for out-of-range settings (before anything is opened or created).
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        create: bool = False,
        embedder: str | Embedder | None = None,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        commit_chunks: int = 256,
    ):
        if chunk_tokens is not None:
            check_chunking(chunk_tokens, overlap_tokens if overlap_tokens is not None else 0)
        if overlap_tokens is not None and (
            not isinstance(overlap_tokens, int) or overlap_tokens < 0
        ):
            raise ConfigError(
                f"Overlap {overlap_tokens!r}: need a whole number >= 0 (e.g. --overlap-tokens 40)."
            )
        if not isinstance(commit_chunks, int) or commit_chunks < 1:
            raise ConfigError(f"commit_chunks {commit_chunks!r}: need a whole number >= 1.")
        self.store: ChunkStore = open_store(location, create=create)
        self.location = self.store.location
        try:
            self.meta = self.store.read_meta()
            if isinstance(embedder, Embedder):
                self._embedder: Embedder | None = embedder
                spec = embedder.spec
            else:
                self._embedder = None
                spec = embedder or self.meta.get("embedder") or DEFAULT_EMBEDDER
            if Path(spec).expanduser().is_dir():
                spec = str(Path(spec).expanduser().resolve())
            self.embedder_spec = spec
            self._check_embedder()
            self.chunk_tokens = (
                chunk_tokens
                if chunk_tokens is not None
                else self.meta.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)
            )
            if overlap_tokens is None:
                overlap_tokens = self.meta.get("overlap_tokens", DEFAULT_OVERLAP_TOKENS)
                if overlap_tokens >= self.chunk_tokens // 2:  # the default, scaled to a small chunk
                    overlap_tokens = self.chunk_tokens // 5
            self.overlap_tokens = overlap_tokens
            check_chunking(self.chunk_tokens, self.overlap_tokens)
        except BaseException:
            self.store.close()
            raise
        self.commit_chunks = commit_chunks

    def _check_embedder(self) -> None:
        built_with = self.meta.get("embedder")
        if built_with and self.embedder_spec != built_with:
            raise ConfigError(
                f"Knowledge base {self.location} was built with embedder {built_with!r}, not "
                f"{self.embedder_spec!r}. Leave --embedder out, or use a new --kb."
            )

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded on first use)."""
        if self._embedder is None:
            self._embedder = Embedder(self.embedder_spec)
        return self._embedder

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    # reading ----------------------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        """Every document in the knowledge base."""
        return self.store.documents()

    def chunks(self, doc_id: str) -> list[Chunk]:
        """The chunks of one document in order (as stored and searched). DataError if unknown."""
        chunks = self.store.chunks(doc_id)
        if not chunks:
            raise DataError(
                f"No document {doc_id!r} in knowledge base {self.location} (see `infuse kb list`)."
            )
        return chunks

    def document(self, doc_id: str) -> Document:
        """One document with its full text, as it was added. DataError if unknown.

        Knowledge bases built before documents kept their text give the chunks' text joined
        (with the overlap between chunks repeated).
        """
        chunks = self.chunks(doc_id)
        first = chunks[0]
        text = self.store.document_text(doc_id)
        if text is None:
            bodies = []
            for chunk in chunks:
                prefix = heading_prefix(chunk.title, chunk.heading_path)
                body = chunk.text
                if prefix and body.startswith(prefix + "\n\n"):
                    body = body[len(prefix) + 2 :]
                bodies.append(body)
            text = "\n\n".join(bodies)
        reader_options = {
            key: value for key, value in first.reader_options.items() if key != EXTRA_METADATA
        }
        return Document(
            text=text,
            source=first.source,
            title=first.title,
            metadata=dict(first.metadata),
            doc_id=doc_id,
            reader_options=reader_options,
        )

    def search(
        self, query: str, settings: SearchSettings | None = None, **changes: Any
    ) -> list[SearchHit]:
        """The best chunks for `query`, best first: searched with `settings` (default
        `SearchSettings()`: 5 chunks, hybrid, no threshold) and `changes` to its fields
        (`kb.search(q, k=3, mode="bm25", filters={"team": "support"})`)."""
        settings = (settings or SearchSettings()).changed(**changes)
        return retrieve(self.store, query, embedder=self.embedder, **settings.keywords())

    # writing ----------------------------------------------------------------------------
    @contextmanager
    def _writing(self, on_progress: ProgressCallback | None) -> Iterator[None]:
        """Hold the writer lock; re-read the settings another writer may have just saved."""

        def on_wait() -> None:
            if on_progress is not None:
                on_progress(0, 0, stage="waiting", item=str(self.location))

        with self.store.writing(on_wait):
            self.meta = self.store.read_meta()
            self._check_embedder()
            yield

    def add(
        self,
        paths: Sequence[str | Path],
        *,
        row_options: RowOptions | None = None,
        metadata: dict[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest files, folders or globs. Unchanged documents are skipped, changed ones replaced;
        unreadable or binary files are reported in `skipped` with the reason. A file reached
        through a symlink is stored under its real path (so it is never stored twice)."""
        files, missing = find_files(paths)
        files = list(dict.fromkeys(Path(os.path.realpath(file)) for file in files))
        report = IngestReport(skipped=missing)
        if not is_database_url(self.location):
            own_folder = Path(os.path.realpath(self.location))
            files, report.skipped = _leave_out(own_folder, files, report.skipped)
        reader_options = dict(row_options.to_dict()) if row_options else {}
        if metadata:
            reader_options[EXTRA_METADATA] = dict(metadata)

        def steps() -> Iterator[tuple[str, list[Document], str | None]]:
            for path in files:
                try:
                    documents = read_source_file(path, reader_options, warnings=report.warnings)
                except DataError as error:
                    report.skipped.append({"path": str(path), "reason": str(error)})
                    yield path.name, [], None
                    continue
                if not any(document.text.strip() for document in documents):
                    report.skipped.append(
                        {"path": str(path), "reason": f"{path}: no text found; skipped."}
                    )
                    yield path.name, [], None
                    continue
                yield path.name, documents, str(path)

        with self._writing(on_progress):
            self._write(steps(), len(files), report, on_progress)
        return report

    def add_documents(
        self, documents: Sequence[Document], *, on_progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Ingest documents that did not come from a file here (a web page, a note, a record).

        `source` may be a URL or any id; a document whose `doc_id` is stored with the same
        content is unchanged, with other content it is replaced. Other documents are left
        alone. Documents without text, or a `doc_id` given twice, are reported in `skipped`.
        """
        report = IngestReport()
        for document in documents:
            if not isinstance(document, Document):
                raise DataError(
                    f"add_documents takes infuse.knowledge.Document objects, not {type(document).__name__}."
                )
            if not document.source or not document.doc_id:
                raise DataError(
                    f"Document {document.title or document.text[:40]!r} has no source; "
                    "give it a URL, a path or any id."
                )

        def steps() -> Iterator[tuple[str, list[Document], str | None]]:
            for document in documents:
                yield document.doc_id, [document], None

        with self._writing(on_progress):
            self._write(steps(), len(documents), report, on_progress)
        return report

    def sync(
        self,
        *,
        refreshers: Iterable[SourceRefresher] | None = None,
        prune: bool = False,
        on_progress: ProgressCallback | None = None,
        safe_share: float = SAFE_SHARE,
    ) -> IngestReport:
        """Bring every document up to date with its source, asking the refresher of its kind.

        Files are re-read the way they were added and removed when they no longer exist;
        URLs are checked by the refresher the crawler supplies (kept as they are without one);
        text ids are never removed. Chunks stored twice are repaired first. Raises
        SyncRefusedError, changing nothing, when more than `safe_share` of the documents would
        go (an unmounted drive looks like deleted files) unless `prune` confirms it.
        """
        report = IngestReport()
        available: dict[str, SourceRefresher] = {FILE: FileRefresher()}
        available.update({refresher.kind: refresher for refresher in refreshers or ()})
        with self._writing(on_progress):
            report.repaired = self.store.repair()
            records = self.documents()
            by_kind: dict[str, list[DocumentRecord]] = {}
            for record in records:
                if source_kind(record.source) != TEXT:  # plain ids: nothing to check, never removed
                    by_kind.setdefault(source_kind(record.source), []).append(record)
            results: dict[str, RefreshResult] = {}
            gone: set[str] = set()
            for kind, kind_records in by_kind.items():
                refresher = available.get(kind)
                if refresher is None:
                    report.unchecked += [record.doc_id for record in kind_records]
                elif kind == FILE:
                    gone.update(FileRefresher().missing(kind_records))
                else:
                    results[kind] = refresher.refresh(kind_records)
                    gone.update(results[kind].gone)
                    report.skipped += results[kind].skipped
            gone_ids = [record.doc_id for record in records if record.source in gone]
            if not prune:
                check_removal(str(self.location), gone, gone_ids, len(records), safe_share)
            if gone:
                self.store.remove_sources(sorted(gone))
                report.removed += gone_ids
            sources = {
                record.source
                for kind_records in by_kind.values()
                for record in kind_records
                if record.source not in gone
            }
            self._write(
                self._refreshed(by_kind, results, gone, report), len(sources), report, on_progress
            )
        return report

    def _refreshed(
        self,
        by_kind: dict[str, list[DocumentRecord]],
        results: dict[str, RefreshResult],
        gone: set[str],
        report: IngestReport,
    ) -> Iterator[tuple[str, list[Document], str | None]]:
        """(name, current documents, source they replace) for every source still there."""
        files = FileRefresher()
        for kind, kind_records in by_kind.items():
            by_source: dict[str, list[DocumentRecord]] = {}
            for record in kind_records:
                if record.source not in gone:
                    by_source.setdefault(record.source, []).append(record)
            if kind == FILE:
                for source, source_records in by_source.items():
                    result = files.refresh(source_records)
                    report.skipped += result.skipped
                    yield Path(source).name, result.documents, None if result.skipped else source
                continue
            fresh: dict[str, list[Document]] = {}
            for document in results[kind].documents if kind in results else []:
                fresh.setdefault(document.source, []).append(document)
            for source, source_records in by_source.items():
                if source in fresh:
                    yield source, fresh.pop(source), source
                else:
                    if kind in results:
                        report.unchanged += [record.doc_id for record in source_records]
                    yield source, [], None
            for source, documents in fresh.items():  # new sources a refresher found
                yield source, documents, source

    def remove(self, targets: Sequence[str | Path]) -> tuple[list[str], list[str]]:
        """Remove documents by source (a file path: all its documents; a URL) or document id.

        Returns (removed document ids, targets that matched nothing).
        """
        removed, unknown = [], []
        with self._writing(None):
            records = self.documents()
            for target in targets:
                names = {str(target)}
                if not is_database_url(str(target)) and source_kind(str(target)) != "url":
                    expanded = os.path.expanduser(str(target))
                    names |= {os.path.abspath(expanded), os.path.realpath(expanded)}
                sources = sorted({record.source for record in records if record.source in names})
                by_id = [record.doc_id for record in records if record.doc_id == str(target)]
                if sources:
                    self.store.remove_sources(sources)
                    removed += [record.doc_id for record in records if record.source in sources]
                elif by_id:
                    self.store.replace_documents([], by_id)
                    removed += by_id
                else:
                    unknown.append(str(target))
            if removed:
                self.store.optimize()
        return removed, unknown

    def _save_meta(self, dimension: int) -> None:
        wanted = {
            "embedder": self.embedder_spec,
            "dimension": dimension,
            "chunk_tokens": self.chunk_tokens,
            "overlap_tokens": self.overlap_tokens,
        }
        if self.meta.get("dimension") not in (None, dimension):
            raise ConfigError(
                f"Knowledge base {self.location} holds {self.meta['dimension']}-dim vectors; "
                f"embedder {self.embedder_spec} makes {dimension}. Use a new --kb."
            )
        if any(self.meta.get(key) != value for key, value in wanted.items()):
            self.meta.update(wanted)
            self.store.write_meta(self.meta)

    def _commit(
        self,
        chunks: list[Chunk],
        remove_doc_ids: list[str],
        texts: dict[str, str],
        report: IngestReport,
    ) -> None:
        if chunks:
            vectors = self.embedder.embed([chunk.text for chunk in chunks])
            self._save_meta(int(vectors.shape[1]))
            for chunk, vector in zip(chunks, vectors, strict=True):
                chunk.vector = vector
        if chunks or remove_doc_ids:
            self.store.replace_documents(chunks, remove_doc_ids, texts)
        report.chunks_written += len(chunks)

    def _write(
        self,
        steps: Iterable[tuple[str, list[Document], str | None]],
        total: int,
        report: IngestReport,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Store what `steps` yields: (name for progress, documents, source they replace or None).

        A document is added, replaced or left unchanged by content hash; when a source is
        named, its stored documents that `documents` no longer holds are removed.
        """
        stored = {record.doc_id: record for record in self.documents()}
        ids_by_source: dict[str, list[str]] = {}
        for record in stored.values():
            ids_by_source.setdefault(record.source, []).append(record.doc_id)
        pending: list[Chunk] = []
        doomed: list[str] = []
        texts: dict[str, str] = {}
        seen: set[str] = set()
        done = 0
        last = ""
        for name, documents, replaces in steps:
            for document in documents:
                if document.doc_id in seen:
                    report.skipped.append(
                        {
                            "path": document.source,
                            "reason": f"{document.doc_id}: given twice; kept the first.",
                        }
                    )
                    continue
                seen.add(document.doc_id)
                if not document.text.strip():
                    report.skipped.append(
                        {"path": document.source, "reason": f"{document.doc_id}: no text; skipped."}
                    )
                    continue
                record = stored.get(document.doc_id)
                if record is not None and record.doc_hash == document.content_hash:
                    report.unchanged.append(document.doc_id)
                    continue
                (report.updated if record else report.added).append(document.doc_id)
                pending += chunk_document(
                    document, max_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens
                )
                texts[document.doc_id] = document.text
            if replaces is not None:
                kept = {document.doc_id for document in documents if document.text.strip()}
                vanished = [
                    doc_id for doc_id in ids_by_source.get(replaces, []) if doc_id not in kept
                ]
                doomed += vanished
                report.removed += vanished
            done += 1
            last = name
            # the last step is reported once its chunks are embedded and stored (below): most of
            # a small folder's time is that final commit, and "done" must mean done
            if on_progress is not None and done < total:
                on_progress(done, total, stage="indexing", item=name)
            if len(pending) >= self.commit_chunks:
                self._commit(pending, doomed, texts, report)
                pending, doomed, texts = [], [], {}
        self._commit(pending, doomed, texts, report)
        if report.chunks_written or report.removed or report.repaired:
            self.store.optimize()
        if on_progress is not None and done and done >= total:
            on_progress(done, total, stage="indexing", item=last)
