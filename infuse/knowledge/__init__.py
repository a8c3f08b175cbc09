"""Knowledge base: documents in, chunks + vectors + BM25 out, hybrid retrieval back.

Light to import: heavy libraries (lancedb, psycopg, sentence-transformers, pypdfium2,
BeautifulSoup) load inside the functions that need them.
"""

from __future__ import annotations

from infuse.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "Chunk": "infuse.knowledge.documents",
    "Document": "infuse.knowledge.documents",
    "DocumentRecord": "infuse.knowledge.documents",
    "SearchHit": "infuse.knowledge.documents",
    "RowOptions": "infuse.knowledge.readers",
    "ReadResult": "infuse.knowledge.reading",
    "find_files": "infuse.knowledge.reading",
    "read_file": "infuse.knowledge.reading",
    "read_paths": "infuse.knowledge.reading",
    "KnowledgeBase": "infuse.knowledge.kb",
    "IngestReport": "infuse.knowledge.kb",
    "SearchSettings": "infuse.knowledge.retrieval",
    "evaluate_retrieval": "infuse.knowledge.evaluation",
})
