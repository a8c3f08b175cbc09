"""RAG: retrieve numbered passages from the knowledge base, answer from them with [n] citations,
and say the knowledge base has no answer when nothing relevant was retrieved.

    answer(question, kb, model=...) -> Answer      the Python twin of `infuse ask --mode rag`
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.answer import Answer, Citation
from infuse.knowledge.documents import SearchHit
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.store import Filters
from infuse.models import DEFAULT_MODEL

NO_ANSWER = "The knowledge base has no answer to this question."
DEFAULT_MIN_SIMILARITY = 0.25  # cosine; all-MiniLM-L6-v2 puts unrelated text well below this
SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages from the user's knowledge base. "
    "Cite every passage you use by its number in square brackets, like [1] or [2]. "
    f"If the passages do not contain the answer, reply exactly: {NO_ANSWER}"
)
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def format_passages(hits: list[SearchHit]) -> str:
    """The retrieved chunks as `[n] (source: ...)` blocks, numbered from 1."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        blocks.append(f"[{number}] (source: {Path(hit.chunk.source).name})\n{hit.chunk.text}")
    return "\n\n".join(blocks)


def build_messages(
    question: str, hits: list[SearchHit], system_prompt: str = SYSTEM_PROMPT
) -> list[dict[str, str]]:
    """The chat messages for one RAG question: instructions, numbered passages, the question."""
    user = f"Passages:\n\n{format_passages(hits)}\n\nQuestion: {question}"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def cited_numbers(text: str, passage_count: int) -> list[int]:
    """Passage numbers cited as [n] or [n, m] in `text`, in first-cited order, within range."""
    numbers: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= passage_count and number not in numbers:
                numbers.append(number)
    return numbers


_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an the is are was were be been of to in on at by for with from and or as it its this that "
    "these those there here what which who whom how when where why do does did has have had i you "
    "he she we they them our your their not no yes can will would should could may might".split()
)
ATTRIBUTION_MIN_OVERLAP = 0.6


def _content_words(text: str) -> set[str]:
    return {word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS}


def attributed_numbers(answer_text: str, hits: list[SearchHit]) -> list[int]:
    """Passages that support an answer which cites none: those holding at least 60% of the
    answer's content words (numbers included), best first. Empty when none does."""
    words = _content_words(answer_text)
    if not words:
        return []
    scored = []
    for number, hit in enumerate(hits, start=1):
        share = len(words & _content_words(hit.chunk.text)) / len(words)
        if share >= ATTRIBUTION_MIN_OVERLAP:
            scored.append((share, -number, number))
    return [number for _share, _order, number in sorted(scored, reverse=True)]


def _citation(number: int, hit: SearchHit) -> Citation:
    return Citation(
        number=number,
        source=hit.chunk.source,
        text=hit.chunk.text,
        score=hit.score,
        metadata={
            "doc_id": hit.chunk.doc_id,
            "title": hit.chunk.title,
            "heading_path": hit.chunk.heading_path,
            "similarity": hit.similarity,
        },
    )


def answer(
    question: str,
    kb: KnowledgeBase | str | Path | None = None,
    *,
    model: Any = None,
    k: int = 5,
    mode: str = "hybrid",
    filters: Filters | None = None,
    reranker: Any = None,
    min_similarity: float | None = DEFAULT_MIN_SIMILARITY,
    min_rerank_score: float | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    on_token: Callable[[str], None] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
) -> Answer:
    """Answer `question` from the knowledge base `kb` (a KnowledgeBase, folder or URL).

    `model` is a ChatModel, a model spec for `infuse.llm.load_chat_model`, or None for the
    default packaged model. Returns an Answer whose citations are the passages cited as [n]
    (`facts["passages"]` lists every passage given); when retrieval finds nothing above the
    thresholds the model is not called and `no_answer` is True.
    """
    started = time.perf_counter()
    own_kb = not isinstance(kb, KnowledgeBase)
    knowledge = KnowledgeBase(kb) if own_kb else kb
    try:
        hits = knowledge.search(
            question,
            k=k,
            mode=mode,
            filters=filters,
            reranker=reranker,
            min_similarity=min_similarity,
            min_rerank_score=min_rerank_score,
        )
    finally:
        if own_kb:
            knowledge.close()
    retrieval_s = time.perf_counter() - started
    passages = [
        {"number": n, "source": hit.chunk.source, "score": hit.score}
        for n, hit in enumerate(hits, start=1)
    ]
    if not hits:
        if on_token is not None:
            on_token(NO_ANSWER)
        return Answer(
            text=NO_ANSWER,
            method="rag",
            no_answer=True,
            facts={"passages": []},
            timings={"retrieval_s": retrieval_s, "total_s": time.perf_counter() - started},
        )
    if model is None or isinstance(model, str):
        from infuse.llm import load_chat_model

        model = load_chat_model(model or DEFAULT_MODEL, base_url=base_url, api_key=api_key)
    generation = model.generate(
        build_messages(question, hits),
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        on_token=on_token,
    )
    text = generation.text.strip()
    no_answer = NO_ANSWER.rstrip(".").lower() in text.lower()
    numbers = cited_numbers(text, len(hits))
    citation_mode = "cited"
    if not numbers and not no_answer:
        # Small models often answer right without writing [n]: name the passages that hold the
        # answer's words instead, marked as attributed (not cited by the model).
        numbers, citation_mode = attributed_numbers(text, hits), "attributed"
    citations = [_citation(number, hits[number - 1]) for number in numbers]
    for citation in citations:
        citation.metadata["attributed"] = citation_mode == "attributed"
    timings = {
        "retrieval_s": retrieval_s,
        "generation_s": generation.total_s,
        "total_s": time.perf_counter() - started,
    }
    if generation.time_to_first_token_s is not None:
        timings["time_to_first_token_s"] = retrieval_s + generation.time_to_first_token_s
    return Answer(
        text=text,
        method="rag",
        citations=citations,
        timings=timings,
        no_answer=no_answer,
        facts={
            "citation_mode": citation_mode if citations else "none",
            "passages": passages,
            "model": getattr(model, "name", ""),
            "mode": mode,
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
        },
    )
