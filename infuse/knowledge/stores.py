"""Open a knowledge base's store by location: a folder (LanceDB) or a `postgresql://` URL.

Apart from `store.py` (the interface the backends import) so that the base class and its
backends do not import each other.
"""

from __future__ import annotations

from pathlib import Path

from infuse.knowledge.store import DEFAULT_KB_DIR, ChunkStore, is_database_url


def open_store(location: str | Path | None = None, *, create: bool = False) -> ChunkStore:
    """Open the store at a folder path or a PostgreSQL URL (default `.infuse/kb`).

    Raises StoreError naming the location when it holds no knowledge base, unless `create`
    (then an empty one is made there; a folder of other files is still refused).
    """
    location = location or DEFAULT_KB_DIR
    if is_database_url(location):
        from infuse.knowledge.pg_store import PostgresStore

        return PostgresStore(str(location), create=create)
    from infuse.knowledge.lance_store import LanceStore

    return LanceStore(Path(location), create=create)
