"""CAG: the whole knowledge in the model's KV cache once, many fast answers from it.

build_cache(files, model, output) -> Manifest       one prefill, saved to disk
CagSession.open(cache_dir).answer(question) -> Answer   many questions, the cache never grows
answer(question, cache_dir) -> Answer                   one question (local, or `base_url=` a server)
ServerCagSession                                      the same prefix every time, for server caches
"""

from infuse.cag.knowledge import DEFAULT_INSTRUCTIONS, KnowledgePrefix, build_prefix
from infuse.cag.session import CagSession, answer, build_cache, check_fit
from infuse.cag.store import Manifest


def __getattr__(name: str):
    # The server path needs httpx; import it only when asked for (the bench runs without it).
    if name == "ServerCagSession":
        from infuse.cag.server import ServerCagSession

        return ServerCagSession
    raise AttributeError(name)


__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "CagSession",
    "KnowledgePrefix",
    "Manifest",
    "ServerCagSession",
    "answer",
    "build_cache",
    "build_prefix",
    "check_fit",
]
