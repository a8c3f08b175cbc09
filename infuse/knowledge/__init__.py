"""Knowledge base: documents in, chunks + vectors + BM25 out, hybrid retrieval back.

Light to import: heavy libraries (lancedb, psycopg, sentence-transformers, pypdfium2,
BeautifulSoup) load inside the functions that need them.
"""

from infuse.knowledge.documents import Chunk, Document, DocumentRecord, SearchHit
from infuse.knowledge.readers import RowOptions
from infuse.knowledge.reading import ReadResult, find_files, read_file, read_paths

__all__ = [
    "Chunk",
    "Document",
    "DocumentRecord",
    "ReadResult",
    "RowOptions",
    "SearchHit",
    "find_files",
    "read_file",
    "read_paths",
]


def __getattr__(name: str):
    # KnowledgeBase pulls in the stores and retrieval: load it on first use only.
    if name == "KnowledgeBase":
        from infuse.knowledge.kb import KnowledgeBase

        return KnowledgeBase
    raise AttributeError(f"module 'infuse.knowledge' has no attribute {name!r}")


__all__ += ["KnowledgeBase"]
