"""The server store: PostgreSQL + pgvector, reached by URL (`postgresql://user@host/db`).

Vectors in a pgvector column with an HNSW cosine index; the lexical side is Postgres full-text
search (a generated `tsvector` column, GIN index, `ts_rank`); a document's first chunk also
holds its full text. Each write runs in one transaction, so a killed client leaves whole
documents or none. Writers hold a session advisory lock, so two `kb add` at once run one after
the other; inserts are keyed on the chunk id (`ON CONFLICT`), so a chunk is never stored twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from infuse.errors import StoreError
from infuse.knowledge.documents import Chunk, DocumentRecord, SearchHit
from infuse.knowledge.store import (
    COLUMN_FILTERS,
    ChunkStore,
    Filters,
    no_knowledge_base,
    normalize_filters,
    records_from_rows,
)

CHUNKS = "infuse_chunks"
META = "infuse_meta"
STAGING = "infuse_staging"
WRITER_LOCK = 0x696E6675  # advisory lock key ("infu") held by the one writer of this database
CREATE_LOCK = WRITER_LOCK + 1  # held while the tables are created
TEXT_COLUMN = "document_text"
_COLUMNS = [
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
    "reader_options",
    "embedding",
    TEXT_COLUMN,
]
_COLUMN_TYPES = (
    "chunk_id text, doc_id text, source text, title text, doc_hash text, position int, "
    "chunk_count int, text text, heading_path jsonb, metadata jsonb, reader_options jsonb, "
    f"embedding vector, {TEXT_COLUMN} text"
)
_HIT_SELECT = (
    "chunk_id, doc_id, source, title, doc_hash, position, chunk_count, text, heading_path, "
    "metadata, embedding::text"
)


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (for error messages)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _vector_text(vector: Any) -> str:
    return "[" + ",".join(f"{float(value):.7g}" for value in vector) + "]"


class PostgresStore(ChunkStore):
    """Chunks in PostgreSQL tables `infuse_chunks` and `infuse_meta` (created on first use)."""

    def __init__(
        self, url: str, *, create: bool = False, connect_timeout: int = 5, ef_search: int = 100
    ):
        import psycopg

        self.location = url
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as error:
            reason = (
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            )
            raise StoreError(
                f"Cannot connect to the PostgreSQL server at {redact(url)} ({reason}). Is it running "
                "and is the URL right (postgresql://user:password@host:port/database)?"
            ) from error
        try:
            exists = self._conn.execute("SELECT to_regclass(%s)", (META,)).fetchone()[0]
            if exists is None and not create:
                self._conn.close()
                raise StoreError(no_knowledge_base(redact(url)))
            if exists is None:
                # Two clients creating at once would race in the catalog (duplicate key errors).
                self._conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))
                try:
                    self._conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    self._conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {META} "
                        "(key text PRIMARY KEY, value jsonb NOT NULL)"
                    )
                finally:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_LOCK,))
            self._conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
        except psycopg.Error as error:
            raise StoreError(
                f"The PostgreSQL server at {redact(url)} cannot host the knowledge base ({error}). "
                "It needs the pgvector extension (CREATE EXTENSION vector) and rights to create tables."
            ) from error
        self._has_table: bool | None = None
        self._has_text_column = False

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def writing(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        locked = self._execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK,)).fetchone()[0]
        if not locked:
            if on_wait is not None:
                on_wait()
            self._execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
        try:
            self._has_table = None  # another writer may have created it meanwhile
            yield
        finally:
            if not self._conn.closed:
                self._execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))

    def _execute(self, sql: str, params: Any = None) -> Any:
        import psycopg

        try:
            return self._conn.execute(sql, params)
        except psycopg.OperationalError as error:
            raise StoreError(
                f"Lost the PostgreSQL server at {redact(self.location)}: {error}"
            ) from error

    # settings ---------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        rows = self._execute(f"SELECT key, value FROM {META}").fetchall()
        return {key: value for key, value in rows}

    def write_meta(self, meta: dict[str, Any]) -> None:
        with self._conn.transaction():
            for key, value in meta.items():
                self._execute(
                    f"INSERT INTO {META} (key, value) VALUES (%s, %s::jsonb) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (key, json.dumps(value)),
                )

    # table ------------------------------------------------------------------------------
    def _table_exists(self) -> bool:
        if not self._has_table:
            row = self._execute("SELECT to_regclass(%s)", (CHUNKS,)).fetchone()
            self._has_table = row[0] is not None
        return self._has_table

    def _create_table(self, dimension: int) -> None:
        with self._conn.transaction():
            self._execute(
                f"""CREATE TABLE IF NOT EXISTS {CHUNKS} (
                    chunk_id text PRIMARY KEY, doc_id text NOT NULL, source text NOT NULL,
                    title text NOT NULL DEFAULT '', doc_hash text NOT NULL, position int NOT NULL,
                    chunk_count int NOT NULL, text text NOT NULL, heading_path jsonb NOT NULL,
                    metadata jsonb NOT NULL, reader_options jsonb NOT NULL,
                    embedding vector({int(dimension)}) NOT NULL, {TEXT_COLUMN} text,
                    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)"""
            )
            self._execute(f"CREATE INDEX IF NOT EXISTS {CHUNKS}_doc ON {CHUNKS} (doc_id)")
            self._execute(f"CREATE INDEX IF NOT EXISTS {CHUNKS}_source ON {CHUNKS} (source)")
            self._execute(f"CREATE INDEX IF NOT EXISTS {CHUNKS}_tsv ON {CHUNKS} USING gin (tsv)")
            self._execute(
                f"CREATE INDEX IF NOT EXISTS {CHUNKS}_embedding ON {CHUNKS} "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        self._has_table = True

    def _replace(self, chunks: list[Chunk], doomed: list[str], texts: dict[str, str]) -> None:
        if not self._table_exists():
            if not chunks:
                return
            self._create_table(len(chunks[0].vector))
        if not self._has_text_column:  # tables made before documents kept their text
            self._execute(f"ALTER TABLE {CHUNKS} ADD COLUMN IF NOT EXISTS {TEXT_COLUMN} text")
            self._has_text_column = True
        columns = ", ".join(_COLUMNS)
        with self._conn.transaction():
            self._execute(f"DELETE FROM {CHUNKS} WHERE doc_id = ANY(%s)", (doomed,))
            if chunks:
                self._execute(f"CREATE TEMP TABLE {STAGING} ({_COLUMN_TYPES}) ON COMMIT DROP")
                with self._conn.cursor() as cursor:
                    with cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN") as copy:
                        for chunk in chunks:
                            copy.write_row(
                                [
                                    chunk.chunk_id,
                                    chunk.doc_id,
                                    chunk.source,
                                    chunk.title,
                                    chunk.doc_hash,
                                    chunk.position,
                                    chunk.chunk_count,
                                    chunk.text,
                                    json.dumps(chunk.heading_path, ensure_ascii=False),
                                    json.dumps(chunk.metadata, ensure_ascii=False, default=str),
                                    json.dumps(chunk.reader_options, ensure_ascii=False),
                                    _vector_text(chunk.vector),
                                    texts.get(chunk.doc_id) if chunk.position == 0 else None,
                                ]
                            )
                # Keyed on the chunk id: a writer that did not hold the lock cannot add a copy.
                updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in _COLUMNS[1:])
                self._execute(
                    f"INSERT INTO {CHUNKS} ({columns}) SELECT {columns} FROM {STAGING} "
                    f"ON CONFLICT (chunk_id) DO UPDATE SET {updates}"
                )

    def chunks(self, doc_id: str) -> list[Chunk]:
        if not self._table_exists():
            return []
        rows = self._execute(
            f"SELECT {_HIT_SELECT}, reader_options FROM {CHUNKS} WHERE doc_id = %s ORDER BY position",
            (doc_id,),
        ).fetchall()
        chunks = []
        for row in rows:
            chunk = self._hit(row[:-1], 0.0, similarity=None, lexical=None).chunk
            chunk.reader_options = row[-1]
            chunks.append(chunk)
        return chunks

    def document_text(self, doc_id: str) -> str | None:
        if not self._table_exists():
            return None
        has_column = self._execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
            (CHUNKS, TEXT_COLUMN),
        ).fetchone()
        if not has_column:
            return None
        row = self._execute(
            f"SELECT {TEXT_COLUMN} FROM {CHUNKS} WHERE doc_id = %s AND position = 0 LIMIT 1",
            (doc_id,),
        ).fetchone()
        return row[0] if row else None

    def remove_sources(self, sources: list[str]) -> int:
        if not self._table_exists() or not sources:
            return 0
        with self._conn.transaction():
            removed = self._execute(
                f"SELECT count(*) FROM {CHUNKS} WHERE position = 0 AND source = ANY(%s)", (sources,)
            ).fetchone()[0]
            self._execute(f"DELETE FROM {CHUNKS} WHERE source = ANY(%s)", (sources,))
        return int(removed)

    def documents(self) -> list[DocumentRecord]:
        if not self._table_exists():
            return []
        cursor = self._execute(
            f"SELECT doc_id, source, title, doc_hash, chunk_count, metadata, reader_options "
            f"FROM {CHUNKS} WHERE position = 0"
        )
        names = [column.name for column in cursor.description]
        return records_from_rows([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])

    def count(self) -> int:
        if not self._table_exists():
            return 0
        return int(self._execute(f"SELECT count(*) FROM {CHUNKS}").fetchone()[0])

    # search -----------------------------------------------------------------------------
    @staticmethod
    def _where(filters: Filters | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for key, values in normalize_filters(filters).items():
            if key in COLUMN_FILTERS:
                clauses.append(f"{key} = ANY(%s)")
                params.append(values)
            else:
                clauses.append("metadata->>%s = ANY(%s)")
                params += [key, values]
        return (" AND ".join(clauses), params)

    @staticmethod
    def _hit(
        row: tuple, score: float, *, similarity: float | None, lexical: float | None
    ) -> SearchHit:
        import numpy as np

        (
            chunk_id,
            doc_id,
            source,
            title,
            doc_hash,
            position,
            chunk_count,
            text,
            heading_path,
            metadata,
            embedding,
        ) = row
        chunk = Chunk(
            chunk_id=chunk_id,
            doc_id=doc_id,
            source=source,
            text=text,
            position=position,
            chunk_count=chunk_count,
            doc_hash=doc_hash,
            title=title,
            heading_path=list(heading_path),
            metadata=metadata,
            vector=np.array(embedding[1:-1].split(","), dtype=np.float32),
        )
        return SearchHit(chunk=chunk, score=score, similarity=similarity, lexical_score=lexical)

    def dense_search(self, vector: Any, k: int, filters: Filters | None = None) -> list[SearchHit]:
        if not self._table_exists():
            return []
        where, params = self._where(filters)
        rows = self._execute(
            f"SELECT {_HIT_SELECT}, 1 - (embedding <=> %s::vector) AS similarity FROM {CHUNKS} "
            f"{'WHERE ' + where if where else ''} ORDER BY embedding <=> %s::vector LIMIT %s",
            [_vector_text(vector), *params, _vector_text(vector), int(k)],
        ).fetchall()
        return [
            self._hit(row[:-1], float(row[-1]), similarity=float(row[-1]), lexical=None)
            for row in rows
        ]

    def lexical_search(self, query: str, k: int, filters: Filters | None = None) -> list[SearchHit]:
        words = re.findall(r"\w+", query.lower())
        if not self._table_exists() or not words:
            return []
        where, params = self._where(filters)
        rows = self._execute(
            f"WITH q AS (SELECT websearch_to_tsquery('english', %s) AS query) "
            f"SELECT {_HIT_SELECT}, ts_rank(tsv, q.query, 1) AS rank FROM {CHUNKS}, q "
            f"WHERE tsv @@ q.query {'AND ' + where if where else ''} ORDER BY rank DESC, chunk_id LIMIT %s",
            [" or ".join(words), *params, int(k)],
        ).fetchall()
        return [
            self._hit(row[:-1], float(row[-1]), similarity=None, lexical=float(row[-1]))
            for row in rows
        ]
