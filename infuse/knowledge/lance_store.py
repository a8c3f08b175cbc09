"""The embedded default store: LanceDB on disk in the project folder.

One table `chunks` holds text, metadata, vectors and a native BM25 full-text index. Every write
is a single LanceDB commit (a new table version), so a killed process leaves the last committed
version: whole documents or none. Settings live beside it in `kb.json` (written atomically).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from infuse.errors import StoreError
from infuse.files import write_text_atomic
from infuse.knowledge.documents import Chunk, DocumentRecord, SearchHit
from infuse.knowledge.store import (
    COLUMN_FILTERS,
    ChunkStore,
    Filters,
    normalize_filters,
    records_from_rows,
)

TABLE = "chunks"
META_FILE = "kb.json"
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
            self.path.mkdir(parents=True, exist_ok=True)
            # Other processes (`kb add` beside a server) commit new versions: look for them once a second.
            self._db = lancedb.connect(
                str(self.path), read_consistency_interval=timedelta(seconds=1)
            )
        except OSError as error:
            raise StoreError(f"Cannot open knowledge base folder {self.path}: {error}.") from error
        self._table: Any = None

    # settings ---------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        meta_path = self.path / META_FILE
        if not meta_path.exists():
            return {}
        try:
            return json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise StoreError(
                f"{meta_path} is unreadable ({error}); delete it to reset the settings."
            ) from error

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_text_atomic(self.path / META_FILE, json.dumps(meta, indent=2))

    # table ------------------------------------------------------------------------------
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
            ]
        )
        table = self._db.create_table(TABLE, schema=schema, exist_ok=True)
        if not any(index.index_type == "FTS" for index in table.list_indices()):
            table.create_index("text", config=FTS(stem=True, remove_stop_words=True))
        self._table = table
        return table

    @staticmethod
    def _row(chunk: Chunk) -> dict[str, Any]:
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
        }

    def replace_documents(self, chunks: list[Chunk], remove_doc_ids: list[str]) -> None:
        table = self._open_table()
        if table is None:
            if not chunks:
                return
            table = self._create_table(len(chunks[0].vector))
        rows = [self._row(chunk) for chunk in chunks]
        doomed = sorted(set(remove_doc_ids))
        condition = (
            f"doc_id IN ({', '.join(_quote(doc_id) for doc_id in doomed)})" if doomed else None
        )
        if condition and rows:
            (
                table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(condition)
                .execute(rows)
            )
        elif condition:
            table.delete(condition)
        elif rows:
            table.add(rows)

    def remove_sources(self, sources: list[str]) -> int:
        table = self._open_table()
        if table is None or not sources:
            return 0
        condition = f"source IN ({', '.join(_quote(source) for source in sources)})"
        removed = table.count_rows(f"position = 0 AND {condition}")
        table.delete(condition)
        return removed

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

    def lexical_search(self, query: str, k: int, filters: Filters | None = None) -> list[SearchHit]:
        table = self._open_table()
        if table is None or not query.strip():
            return []
        search = table.search(query, query_type="fts").limit(k)
        where = where_clause(filters)
        if where:
            search = search.where(where, prefilter=True)
        return self._hits(search.select([*_HIT_COLUMNS, "_score"]).to_list())

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
