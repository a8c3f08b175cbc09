"""Knowledge base: documents in, chunks + vectors + BM25 out, hybrid retrieval back.

Light to import: heavy libraries (lancedb, psycopg, sentence-transformers) load inside the
functions that need them.
"""

from infuse.knowledge.documents import Chunk, Document, DocumentRecord, SearchHit

__all__ = ["Chunk", "Document", "DocumentRecord", "SearchHit"]


def __getattr__(name: str):
    # KnowledgeBase pulls in the readers and retrieval: load it on first use only.
    if name == "KnowledgeBase":
        from infuse.knowledge.kb import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(f"module 'infuse.knowledge' has no attribute {name!r}")


__all__ += ["KnowledgeBase"]
