"""The embedded default store: LanceDB on disk in the project folder.

One table `chunks` holds text, metadata, vectors and a native BM25 full-text index; a
document's first chunk also holds its full text. Every write is a single LanceDB commit (a
new table version), so a killed process leaves the last committed version: whole documents or
none. Settings live beside it in `kb.json` (written atomically), which also marks the folder as
a knowledge base. Writers take a file lock (`kb.lock`) in the folder, so two `kb add` at once
run one after the other. A damaged table (truncated or missing files) is a one-line StoreError.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from infuse.errors import InfuseError, StoreError
from infuse.files import write_text_atomic
from infuse.knowledge.documents import Chunk, DocumentRecord, SearchHit
from infuse.knowledge.store import (
    COLUMN_FILTERS,
    ChunkStore,
    Filters,
    no_knowledge_base,
    normalize_filters,
    records_from_rows,
)

TABLE = "chunks"
META_FILE = "kb.json"
LOCK_FILE = "kb.lock"
TEXT_COLUMN = "document_text"
_RECORD_COLUMNS = [
    "doc_id",
    "source",
    "title",
    "doc_hash",
    "chunk_count",
    "metadata",
    "reader_options",
]
_HIT_COLUMNS = [
    "chunk_id",
    "doc_id",
    "source",
    "title",
    "doc_hash",
    "position",
    "chunk_count",
    "text",
    "heading_path",
    "metadata",
    "vector",
]
_RUST_LOCATION = re.compile(r",\s*/\S+\.rs:\d+:\d+")


def _guarded(method: Callable) -> Callable:
    """Turn LanceDB's errors about a damaged table into one StoreError naming the folder."""

    @functools.wraps(method)
    def wrapper(self: LanceStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except InfuseError:
            raise
        except (RuntimeError, ValueError, OSError) as error:
            reason = _RUST_LOCATION.sub(
                "", str(error).strip().splitlines()[0] if str(error).strip() else ""
            )
            raise StoreError(
                f"Knowledge base {self.path} is damaged or unreadable ({reason or type(error).__name__}). "
                "Restore the folder from a backup, or delete it and rebuild with `infuse kb add`."
            ) from error

    return wrapper


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def where_clause(filters: Filters | None) -> str | None:
    """Filters as a LanceDB SQL predicate (metadata is matched through the `tags` list)."""
    clauses = []
    for key, values in normalize_filters(filters).items():
        if key in COLUMN_FILTERS:
            clauses.append(f"{key} IN ({', '.join(_quote(value) for value in values)})")
        else:
            tags = ", ".join(_quote(f"{key}={value}") for value in values)
            clauses.append(f"array_has_any(tags, [{tags}])")
    return " AND ".join(clauses) or None


class LanceStore(ChunkStore):
    """Chunks in a LanceDB table under `path` (created on first write)."""

    def __init__(
        self,
        path: Path,
        *,
        create: bool = False,
        index_threshold: int = 50_000,
        nprobes: int = 20,
        refine_factor: int = 10,
    ):
        import lancedb

        self.path = Path(path)
        self.location = str(self.path)
        self.index_threshold = index_threshold
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"Knowledge base {self.path} is a file; --kb must be a folder or a postgresql:// URL."
            )
        try:
            if not self._holds_knowledge_base():
                if not create:
                    raise StoreError(no_knowledge_base(str(self.path)))
                # Dot files are another `kb add` creating it this moment (temporary files, lock).
                if self.path.exists() and any(
                    not entry.name.startswith(".") and entry.name != LOCK_FILE
                    for entry in self.path.iterdir()
                ):
                    raise StoreError(
                        f"{self.path} is a folder of other files, not a knowledge base; "
                        "give --kb a new or empty folder."
                    )
                self.path.mkdir(parents=True, exist_ok=True)
                self.write_meta({})
            # Other processes (`kb add` beside a server) commit new versions: look for them once a second.
            self._db = lancedb.connect(
                str(self.path), read_consistency_interval=timedelta(seconds=1)
            )
        except OSError as error:
            raise StoreError(f"Cannot open knowledge base folder {self.path}: {error}.") from error
        self._table: Any = None

    def _holds_knowledge_base(self) -> bool:
        return (self.path / META_FILE).is_file() or (self.path / f"{TABLE}.lance").is_dir()

    @contextmanager
    def writing(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        except OSError as error:
            raise StoreError(
                f"Cannot lock knowledge base {self.path} for writing: {error}."
            ) from error
        try:
            self._table = None  # see what writers before us committed
            yield
        finally:
            lock.release()

    # settings ---------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        meta_path = self.path / META_FILE
        if not meta_path.exists():
            return {}
        try:
            return json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StoreError(
                f"{meta_path} is unreadable ({error}). Restore it from a backup, or delete it "
                "and pass --embedder with the model the knowledge base was built with."
            ) from error

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.path / META_FILE, json.dumps(meta, indent=2))

    # table ------------------------------------------------------------------------------
    @_guarded
    def _open_table(self) -> Any:
        if self._table is None and TABLE in self._db.list_tables().tables:
            self._table = self._db.open_table(TABLE)
        return self._table

    def _create_table(self, dimension: int) -> Any:
        import pyarrow as pa
        from lancedb.index import FTS

        schema = pa.schema(
            [
                ("chunk_id", pa.string()),
                ("doc_id", pa.string()),
                ("source", pa.string()),
                ("title", pa.string()),
                ("doc_hash", pa.string()),
                ("position", pa.int32()),
                ("chunk_count", pa.int32()),
                ("text", pa.string()),
                ("heading_path", pa.list_(pa.string())),
                ("metadata", pa.string()),
                ("reader_options", pa.string()),
                ("tags", pa.list_(pa.string())),
                ("vector", pa.list_(pa.float32(), dimension)),
                (TEXT_COLUMN, pa.string()),
            ]
        )
        table = self._db.create_table(TABLE, schema=schema, exist_ok=True)
        if not any(index.index_type == "FTS" for index in table.list_indices()):
            table.create_index("text", config=FTS(stem=True, remove_stop_words=True))
        self._table = table
        return table

    @staticmethod
    def _row(chunk: Chunk, texts: dict[str, str]) -> dict[str, Any]:
        return {
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "source": chunk.source,
            "title": chunk.title,
            "doc_hash": chunk.doc_hash,
            "position": chunk.position,
            "chunk_count": chunk.chunk_count,
            "text": chunk.text,
            "heading_path": chunk.heading_path,
            "metadata": json.dumps(chunk.metadata, ensure_ascii=False, default=str),
            "reader_options": json.dumps(chunk.reader_options, ensure_ascii=False),
            "tags": [f"{key}={_tag_value(value)}" for key, value in chunk.metadata.items()],
            "vector": chunk.vector,
            TEXT_COLUMN: texts.get(chunk.doc_id) if chunk.position == 0 else None,
        }

    @_guarded
    def _replace(self, chunks: list[Chunk], doomed: list[str], texts: dict[str, str]) -> None:
        table = self._open_table()
        if table is None:
            if not chunks:
                return
            table = self._create_table(len(chunks[0].vector))
        if TEXT_COLUMN not in table.schema.names:  # made before documents kept their text
            table.add_columns({TEXT_COLUMN: "CAST(NULL AS STRING)"})
        rows = [self._row(chunk, texts) for chunk in chunks]
        condition = f"doc_id IN ({', '.join(_quote(doc_id) for doc_id in doomed)})"
        if rows:
            # Keyed on chunk id: a chunk already there (another writer's) is updated, never
            # added twice; the documents' other chunks (an older version) go in the same commit.
            (
                table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(condition)
                .execute(rows)
            )
        else:
            table.delete(condition)

    @_guarded
    def repair(self) -> list[str]:
        table = self._open_table()
        if table is None:
            return []
        total = table.count_rows()
        if total == 0:
            return []
        found = (
            table.search().select(["chunk_id", "doc_id"]).with_row_id(True).limit(total).to_list()
        )
        seen: set[str] = set()
        extra_rows, fixed = [], set()
        for row in found:
            if row["chunk_id"] in seen:
                extra_rows.append(int(row["_rowid"]))
                fixed.add(row["doc_id"])
            seen.add(row["chunk_id"])
        if extra_rows:
            table.delete(f"_rowid IN ({', '.join(map(str, extra_rows))})")
        return sorted(fixed)

    @_guarded
    def chunks(self, doc_id: str) -> list[Chunk]:
        table = self._open_table()
        if table is None:
            return []
        where = f"doc_id = {_quote(doc_id)}"
        count = table.count_rows(where)
        if count == 0:
            return []
        rows = (
            table.search()
            .where(where)
            .select([*_HIT_COLUMNS, "reader_options"])
            .limit(count)
            .to_list()
        )
        by_id: dict[str, Chunk] = {}
        for hit, row in zip(self._hits(rows), rows, strict=True):
            hit.chunk.reader_options = json.loads(row["reader_options"] or "{}")
            by_id.setdefault(hit.chunk.chunk_id, hit.chunk)
        return sorted(by_id.values(), key=lambda chunk: chunk.position)

    @_guarded
    def document_text(self, doc_id: str) -> str | None:
        table = self._open_table()
        if table is None or TEXT_COLUMN not in table.schema.names:
            return None
        rows = (
            table.search()
            .where(f"doc_id = {_quote(doc_id)} AND position = 0")
            .select([TEXT_COLUMN])
            .limit(1)
            .to_list()
        )
        return rows[0][TEXT_COLUMN] if rows else None

    @_guarded
    def remove_sources(self, sources: list[str]) -> int:
        table = self._open_table()
        if table is None or not sources:
            return 0
        condition = f"source IN ({', '.join(_quote(source) for source in sources)})"
        removed = table.count_rows(f"position = 0 AND {condition}")
        table.delete(condition)
        return removed

    @_guarded
    def documents(self) -> list[DocumentRecord]:
        table = self._open_table()
        if table is None:
            return []
        total = table.count_rows("position = 0")
        if total == 0:
            return []
        rows = table.search().where("position = 0").select(_RECORD_COLUMNS).limit(total).to_list()
        for row in rows:
            row["metadata"] = json.loads(row["metadata"] or "{}")
            row["reader_options"] = json.loads(row["reader_options"] or "{}")
        return records_from_rows(rows)

    @_guarded
    def count(self) -> int:
        table = self._open_table()
        return 0 if table is None else table.count_rows()

    # search -----------------------------------------------------------------------------
    def _hits(self, rows: list[dict[str, Any]]) -> list[SearchHit]:
        hits = []
        for row in rows:
            chunk = Chunk(
                chunk_id=row["chunk_id"],
                doc_id=row["doc_id"],
                source=row["source"],
                text=row["text"],
                position=row["position"],
                chunk_count=row["chunk_count"],
                doc_hash=row["doc_hash"],
                title=row["title"],
                heading_path=list(row["heading_path"] or []),
                metadata=json.loads(row["metadata"] or "{}"),
                vector=row.get("vector"),
            )
            similarity = 1.0 - row["_distance"] if "_distance" in row else None
            hits.append(
                SearchHit(
                    chunk=chunk,
                    score=similarity if similarity is not None else row.get("_score", 0.0),
                    similarity=similarity,
                    lexical_score=row.get("_score"),
                )
            )
        return hits

    def has_vector_index(self) -> bool:
        """True once an approximate vector index exists (built at `index_threshold` chunks)."""
        table = self._open_table()
        return table is not None and any(
            index.columns == ["vector"] for index in table.list_indices()
        )

    @_guarded
    def dense_search(self, vector: Any, k: int, filters: Filters | None = None) -> list[SearchHit]:
        table = self._open_table()
        if table is None:
            return []
        query = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(k)
        if self.has_vector_index():
            query = query.nprobes(self.nprobes).refine_factor(self.refine_factor)
        where = where_clause(filters)
        if where:
            query = query.where(where, prefilter=True)
        return self._hits(query.select([*_HIT_COLUMNS, "_distance"]).to_list())

    @_guarded
    def lexical_search(self, query: str, k: int, filters: Filters | None = None) -> list[SearchHit]:
        table = self._open_table()
        if table is None or not query.strip():
            return []
        search = table.search(query, query_type="fts").limit(k)
        where = where_clause(filters)
        if where:
            search = search.where(where, prefilter=True)
        return self._hits(search.select([*_HIT_COLUMNS, "_score"]).to_list())

    @_guarded
    def optimize(self) -> None:
        """Compact files, fold new rows into the indexes, and build the vector index once the
        table is big enough for it to pay (below `index_threshold`, exact search is fast)."""
        table = self._open_table()
        if table is None:
            return
        rows = table.count_rows()
        if rows >= self.index_threshold and not self.has_vector_index():
            build_vector_index(table, rows)
        table.optimize()


def build_vector_index(table: Any, rows: int) -> None:
    """An IVF-PQ cosine index sized for `rows`; queries refine its candidates with exact distances.

    sqrt(rows)/2 partitions and 20 k-means iterations keep the build to minutes on 2 cores;
    recall comes back through `refine_factor` (exact re-scoring of the PQ candidates).
    """
    from lancedb.index import IvfPq

    dimension = table.schema.field("vector").type.list_size
    partitions = max(16, int(rows**0.5 / 2))
    table.create_index(
        "vector",
        config=IvfPq(
            distance_type="cosine",
            num_partitions=partitions,
            num_sub_vectors=max(1, dimension // 8),
            max_iterations=20,
        ),
    )


def _tag_value(value: Any) -> str:
    from infuse.knowledge.store import metadata_value

    return metadata_value(value)
