"""CAG: the whole knowledge in the model's KV cache once, many fast answers from it.

build_cache(files, model, output) -> Manifest       one prefill, saved to disk
CagSession.open(cache_dir).answer(question) -> Answer   many questions, the cache never grows
answer(question, cache_dir) -> Answer                   one question (local, or `base_url=` a server)
ServerCagSession                                      the same prefix every time, for server caches
"""

from __future__ import annotations

from infuse.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "DEFAULT_INSTRUCTIONS": "infuse.cag.knowledge",
    "KnowledgePrefix": "infuse.cag.knowledge",
    "build_prefix": "infuse.cag.knowledge",
    "CagSession": "infuse.cag.session",
    "answer": "infuse.cag.session",
    "build_cache": "infuse.cag.session",
    "check_fit": "infuse.cag.session",
    "Manifest": "infuse.cag.store",
    "ServerCagSession": "infuse.cag.server",
})
