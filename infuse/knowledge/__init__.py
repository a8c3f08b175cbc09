"""Knowledge base: documents in, chunks + vectors + BM25 out, hybrid retrieval back.

Light to import: heavy libraries (lancedb, psycopg, sentence-transformers) load inside the
functions that need them.
"""

from infuse.knowledge.documents import Chunk, Document, DocumentRecord, SearchHit

__all__ = ["Chunk", "Document", "DocumentRecord", "SearchHit"]
