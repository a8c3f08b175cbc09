"""RAG: retrieve numbered passages from the knowledge base, answer from them with [n] citations,
and say the knowledge base has no answer when nothing relevant was retrieved.

    RagSession(kb, model)             opened once (knowledge base, embedder, model), asked many
                                      times: .answer(question, history=...) -> Answer, .stream(...)
    answer(question, kb, model=...)   one question, one-shot: the Python twin of `infuse ask --mode rag`

A session is safe to share between threads: retrieval (the store and the embedder) runs under
the knowledge base's search lock (`search_lock`, shared by every session over the same
KnowledgeBase object); generation is serialised by the model itself.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from infuse.answer import Answer, AnswerMethod, AnswerOptions, Citation
from infuse.closing import Closing
from infuse.conversation import PASSAGES_PROMPT, check_history, passages_messages
from infuse.knowledge.documents import SearchHit
from infuse.knowledge.kb import KnowledgeBase
from infuse.knowledge.retrieval import SearchSettings
from infuse.knowledge.words import FUNCTION_WORDS, is_common, is_filler

NO_ANSWER = "The knowledge base has no answer to this question."
DEFAULT_MIN_SIMILARITY = 0.25  # cosine; all-MiniLM-L6-v2 puts unrelated text well below this
# How a RagSession searches unless told otherwise: 5 chunks, hybrid, and nothing less similar to
# the question than DEFAULT_MIN_SIMILARITY (`RAG_SEARCH.changed(k=3)` keeps that threshold).
RAG_SEARCH = SearchSettings(min_similarity=DEFAULT_MIN_SIMILARITY)
SYSTEM_PROMPT = PASSAGES_PROMPT  # short and plain: what a 135M model follows (see there)
PASSAGES_GIVEN = 3  # passages shown to the model (of the k retrieved; all k stay in facts)
PASSAGE_MAX_WORDS = 60  # longer passages are cut to the window that best matches the question
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_WORD = re.compile(r"[a-z0-9]+")


def passage_text(hit: SearchHit, question: str = "", max_words: int = PASSAGE_MAX_WORDS) -> str:
    """A retrieved chunk as the model sees it: its text, cut to the `max_words` window of lines
    that shares most key terms with `question` when it is longer (its first line, the heading
    prefix, is kept)."""
    text = hit.chunk.text.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(text.split()) <= max_words or len(lines) < 2:
        return " ".join(text.split()[:max_words * 2]) if len(lines) < 2 else text
    wanted = set(key_terms(question))
    head, body = lines[0], lines[1:]
    best: tuple[int, int, int] = (-1, 0, 0)
    for start in range(len(body)):
        words = len(head.split())
        score = 0
        end = start
        while end < len(body) and words + len(body[end].split()) <= max_words:
            words += len(body[end].split())
            score += len(wanted & set(key_terms(body[end])))
            end += 1
        if end == start:
            end = start + 1
        if score > best[0]:
            best = (score, start, end)
    _score, start, end = best
    return "\n".join([head, *body[start:end]])


def format_passages(hits: list[SearchHit], question: str = "") -> str:
    """The passages as plain text blocks separated by blank lines (no numbers, no headers a
    small model would echo)."""
    return "\n\n".join(passage_text(hit, question) for hit in hits)


def build_messages(
    question: str,
    hits: list[SearchHit],
    system_prompt: str = SYSTEM_PROMPT,
    history: Sequence[dict[str, str]] | None = None,
) -> list[dict[str, str]]:
    """The chat messages for one RAG question: the short instruction with the passages (cut
    to what matches the question), the earlier turns, then the question alone."""
    texts = [passage_text(hit, question) for hit in hits]
    return passages_messages(question, texts, history, system_prompt)


# A follow-up leans on an earlier turn: it refers back ("that", "it") or is too short to stand
# alone. Such questions are searched together with the user's previous question(s).
_FOLLOW_UP_WORDS = frozenset(
    "it its it's that this these those they them their theirs he him his she her hers there "
    "then one ones same such former latter".split()
)
_FOLLOW_UP_OPENINGS = ("and ", "but ", "also ", "so ", "what about", "how about", "and?")
FOLLOW_UP_MAX_WORDS = 3  # a question this short rarely carries its own subject
FOLLOW_UP_TURNS = 2  # how many earlier user questions a chain of follow-ups may reach back


def is_follow_up(question: str) -> bool:
    """True when `question` needs the conversation to be understood (pronouns, "and ...",
    or only a few words)."""
    text = question.strip().lower()
    words = _WORD.findall(text)
    return (
        len(words) <= FOLLOW_UP_MAX_WORDS
        or text.startswith(_FOLLOW_UP_OPENINGS)
        or any(word in _FOLLOW_UP_WORDS for word in words)
    )


def retrieval_query(question: str, history: Sequence[dict[str, str]] | None = None) -> str:
    """What to search for: the question itself, or, for a follow-up, the user's previous
    question(s) then this one ("How do I get a refund? and how long does that take?")."""
    if not history or not is_follow_up(question):
        return question
    earlier = [turn["content"] for turn in history if turn.get("role") == "user"]
    used: list[str] = []
    for previous in reversed(earlier):
        used.insert(0, previous)
        if len(used) >= FOLLOW_UP_TURNS or not is_follow_up(previous):
            break
    return " ".join([*used, question])


def cited_numbers(text: str, passage_count: int) -> list[int]:
    """Passage numbers cited as [n] or [n, m] in `text`, in first-cited order, within range."""
    numbers: list[int] = []
    for match in _CITATION.finditer(text):
        for part in match.group(1).split(","):
            number = int(part)
            if 1 <= number <= passage_count and number not in numbers:
                numbers.append(number)
    return numbers


_STOPWORDS = FUNCTION_WORDS | frozenset(
    "here whom has have had i you he she we they them our your their yes".split()
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



# Grounding: what the question asks about must be in the passages, and what the answer states
# must be too. Small models neither decline nor stay inside the passages when told to, so the
# evidence decides (thresholds from bench/calibrate_decline.py, numbers in its docstring).
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_GENERIC = frozenset(
    "many much long often big large small old name named called call get gets got give given "
    "per kind type use used using need needs must one two first last new make made say said "
    "tell know exactly please s t amount cost costs value worth year years week weeks day days up take takes".split()
)
# A number with a unit in an answer ("within 2 minutes") must stand with that unit in a
# passage: small models pair the question's unit with any number they saw.
_MEASURE = re.compile(r"(?<![\d.,])(\d+(?:[.,]\d+)*)[\s-]*([a-z]{3})[a-z]*")
_UNIT_PREFIXES = frozenset(
    "sec min hou day wee mon yea mil mic byt kil meg gig ter bit kib mib gib gra per "
    "met inc mph kph row col pag ite thr con ent lin fil ver req".split()
)
_YES_NO = re.compile(r"^\s*(?:yes|no)\b")
STEM_CHARS = 5  # words match on their first 5 letters ("weigh" ~ "weighs" ~ "weight")
# A question term absent from every passage given -> decline before asking the model, unless
# it is one of the most frequent English words ("my", "way", "makes": how a user phrases it,
# `is_filler`); then ask, and keep the answer only when it names something specific that a
# passage holds (`specific_evidence`). Calibrated on bench/calibration (a third-party set;
# realdocs and the sample pack held out): bench/calibrate_decline.py has the table.
MAX_MISSING_QUESTION_TERMS = 0
MIN_ANSWER_SUPPORT = 0.5  # share of the answer's new content words that a passage must hold


def _stem(word: str) -> str:
    """An everyday word by its first letters ("weighs" ~ "weight"); a number, and a term that
    is no everyday word, whole ("EPOCHSECONDS" is not "epoch"), less a plural s."""
    if word.isdigit():
        return word
    singular = word[:-1] if word.endswith("s") else word
    if len(word) <= STEM_CHARS or is_common(word) or is_common(singular):
        return word[:STEM_CHARS]  # "installs" ~ "install", "directives" ~ "directive"
    return singular


def key_terms(text: str, *, exclude: str = "") -> list[str]:
    """The words that carry `text`'s content (stopwords and question filler left out), stemmed,
    in order, without those of `exclude`."""
    skip = {_stem(word) for word in _content_words(exclude)}
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS or word in _GENERIC or (len(word) < 2 and not word.isdigit()):
            continue
        stem = _stem(word)
        if stem not in skip and stem not in terms:
            terms.append(stem)
    return terms


def _stems_of(texts: Sequence[str]) -> set[str]:
    return {_stem(word) for text in texts for word in _WORD.findall(text.lower())}


def _spellings(text: str) -> dict[str, str]:
    """Each stem of `text` with the word it came from (to ask whether that word is common)."""
    return {_stem(word): word for word in _WORD.findall(text.lower())}


def topic_terms(question: str, terms: Sequence[str]) -> list[str]:
    """Those of the question's `terms` that are not among the most frequent English words
    (`is_filler`: "my", "way" or "makes" are how a user asks; "revenue" is what they ask about)."""
    spelled = _spellings(question)
    return [term for term in terms if not is_filler(spelled.get(term, term))]


def missing_question_terms(question: str, passages: Sequence[str], *, everyday: bool = True) -> list[str]:
    """The question's key terms that no passage holds ("revenue" when no passage speaks of it);
    with `everyday=False` only its topic terms (`topic_terms`)."""
    present = _stems_of(passages)
    missing = [term for term in key_terms(question) if term not in present]
    return missing if everyday else topic_terms(question, missing)


def specific_evidence(answer_text: str, question: str, passages: Sequence[str]) -> list[str]:
    """The answer's own specific terms (numbers and words that are no everyday word, beyond
    what the question says) that a passage holds: what makes an answer more than a restated
    question ("the head of the team") when the passages do not speak of all the question asks."""
    present = _stems_of(passages)
    spelled = _spellings(answer_text)
    # a name: capitalised after the first word ("It is in Springfield.")
    names = {_stem(word.lower()) for word in re.findall(r"[A-Za-z0-9]+", answer_text)[1:] if word[0].isupper()}
    return [
        term for term in key_terms(answer_text, exclude=question)
        if term in present
        and (term.isdigit() or term in names or not is_common(spelled.get(term, term)))
    ]


def grounding_problem(
    answer_text: str,
    question: str,
    passages: Sequence[str],
    *,
    min_support: float = MIN_ANSWER_SUPPORT,
    units: bool = True,
) -> str | None:
    """Why an answer is not grounded in the passages (None when it is): a number no passage
    holds, with `units` a measure no passage gives ("2 minutes" when the passages hold "2" only
    as "2 hours"), no new content at all, or fewer than `min_support` of its new content words
    in any passage."""
    text = answer_text.lower()
    joined = " ".join(passages).lower()
    passage_numbers = set(_NUMBER.findall(joined))
    for number in _NUMBER.findall(text):
        if number not in passages_numbers_or_words(passage_numbers, number):
            return f"the number {number} is in no passage"
    if units:
        joined = joined.replace("%", " percent")
        for number, unit in _MEASURE.findall(text.replace("%", " percent")):
            if unit in _UNIT_PREFIXES and not re.search(
                rf"(?<![\d.,]){re.escape(number)}[\s-]*{unit}", joined
            ):
                return f"no passage gives {number} {unit}..."
    terms = key_terms(answer_text, exclude=question)
    if not terms:
        if _YES_NO.match(text):
            return None  # "No, SQLite does not use configuration files." answers by restating
        return "the answer states nothing the question did not"
    # The answer's own terms ("EPOCHSECONDS", "fcgiwrap") are its evidence; everyday words
    # around them ("keep track of") are how a model phrases it, so they count only when the
    # answer has nothing else.
    spelled = _spellings(text)
    specific = [term for term in terms if not is_common(spelled.get(term, term))]
    terms = specific or terms
    present = _stems_of(passages)
    share = sum(term in present for term in terms) / len(terms)
    if share < min_support:
        missing = [term for term in terms if term not in present]
        return f"{', '.join(missing[:4])} in no passage ({share:.0%} of the answer's words found)"
    return None


def passages_numbers_or_words(numbers: set[str], number: str) -> set[str]:
    """The passage numbers, with "1,000" also as "1000" (answers write numbers either way)."""
    return numbers | {n.replace(",", "") for n in numbers}


_ECHO = re.compile(
    r"^\s*(?:answer|a|response|reply|text|passage|passages|question|q|context)\s*\d*\s*:\s*",
    re.IGNORECASE,
)


_LIST_MARK = re.compile(r"^(?:[-*•]|\d+[.)])\s*")
LIST_ITEMS = 6  # list items kept after an answer line that ends with ":"


def extract_answer(text: str) -> str:
    """The answer in a small model's reply: echoed headers ("Answer:", "Text:") and citation
    marks cut, the first non-empty line, its first sentence (repeats and run-ons dropped); a
    line ending in ":" keeps the list that follows it."""
    lines = text.strip().splitlines()
    cleaned = [_ECHO.sub("", _ECHO.sub("", line).strip()).strip() for line in lines]
    first = next((i for i, line in enumerate(cleaned) if line and not line.startswith("#")), None)
    if first is None:
        return text.strip()
    line = cleaned[first]
    if line.endswith(":"):
        # "The three routines are:" then a list: the answer is the list
        items = [_LIST_MARK.sub("", item).strip() for item in lines[first + 1:]]
        items = [item.rstrip(".;,") for item in items if item][:LIST_ITEMS]
        if items:
            return f"{line} {', '.join(items)}."
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", line)
    answer = sentences[0].strip()
    return re.sub(r"\s*\[\d+(?:\s*,\s*\d+)*\]", "", answer).strip() or text.strip()


def _citation(number: int, hit: SearchHit) -> Citation:
    return Citation(
        number=number,
        source=hit.chunk.source,
        text=hit.chunk.text,
        score=hit.score,
        metadata={
            "doc_id": hit.chunk.doc_id,
            "chunk_id": hit.chunk.chunk_id,
            "title": hit.chunk.title,
            "heading_path": hit.chunk.heading_path,
            "similarity": hit.similarity,
        },
    )




_SEARCH_LOCKS: weakref.WeakKeyDictionary[KnowledgeBase, threading.Lock] = (
    weakref.WeakKeyDictionary()
)
_SEARCH_LOCKS_GUARD = threading.Lock()


def search_lock(kb: KnowledgeBase) -> threading.Lock:
    """The lock that serialises searches on one KnowledgeBase object, shared by every session
    over it (rag and lora+rag share a knowledge base): its embedder's tokenizer must not be
    entered by two threads at once."""
    with _SEARCH_LOCKS_GUARD:
        lock = _SEARCH_LOCKS.get(kb)
        if lock is None:
            lock = _SEARCH_LOCKS[kb] = threading.Lock()
        return lock


class RagSession(AnswerMethod, Closing):
    """A knowledge base, its embedder and a chat model, opened once and asked many times.

    `kb` is a KnowledgeBase (kept open; the caller closes it) or its location (opened here,
    closed by `close()`). `model` is a ChatModel, a model spec for `infuse.llm.load_chat_model`
    (with `base_url`/`api_key` for a server), or None for the default packaged model. The
    embedder and the model load when the session opens; `lazy=True` waits for the first
    question that needs them (`rag.answer` does, so an unanswerable question loads no model).
    `retrieval` is how every question is searched (default `RAG_SEARCH`).
    """

    def __init__(
        self,
        kb: KnowledgeBase | str | Path,
        model: Any = None,
        *,
        name: str = "rag",
        retrieval: SearchSettings | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        system_prompt: str = SYSTEM_PROMPT,
        passages_given: int = PASSAGES_GIVEN,
        grounded: bool = True,
        max_missing_terms: int | None = MAX_MISSING_QUESTION_TERMS,
        base_url: str | None = None,
        api_key: str | None = None,
        device: str | None = None,
        facts: dict[str, Any] | None = None,
        lazy: bool = False,
    ) -> None:
        self.name = name
        self._own_kb = not isinstance(kb, KnowledgeBase)
        self.kb = KnowledgeBase(kb) if self._own_kb else kb
        self._model = model
        self._model_options = {"base_url": base_url, "api_key": api_key, "device": device}
        self.retrieval = RAG_SEARCH if retrieval is None else retrieval  # for every question
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.system_prompt = system_prompt
        self.passages_given = passages_given
        self.grounded, self.max_missing_terms = grounded, max_missing_terms
        self._retrieval_lock = search_lock(self.kb)  # shared by every session on this kb
        self._model_lock = threading.Lock()  # the model loads once, even when asked from threads
        self.facts: dict[str, Any] = {
            "kb": str(self.kb.location), "k": self.retrieval.k, "mode": self.retrieval.mode,
        }
        self.facts.update(facts or {})
        if not lazy:
            self.open()

    def open(self) -> RagSession:
        """Load the embedder and the model now (they would load on the first question)."""
        self.kb.embedder.model  # noqa: B018 - loads the embedding model
        self.model  # noqa: B018 - loads the chat model
        return self

    @property
    def model(self) -> Any:
        """The chat model (loaded on first use when the session was opened lazily)."""
        if self._model is None or isinstance(self._model, str):
            with self._model_lock:
                if self._model is None or isinstance(self._model, str):
                    from infuse.llm import load_chat_model

                    options = {key: value for key, value in self._model_options.items() if value}
                    if options.get("base_url"):
                        options.pop("device", None)
                    spec = (self._model,) if self._model else ()
                    self._model = load_chat_model(*spec, **options)
        self.facts.setdefault("model", getattr(self._model, "name", ""))
        return self._model

    def search(self, query: str) -> list[SearchHit]:
        """The passages this session would give the model for `query` (thread-safe)."""
        with self._retrieval_lock:
            return self.kb.search(query, self.retrieval)

    def passages(self, question: str) -> list[str]:
        """The passage texts the model would be shown for `question`, cut as it sees them
        (empty when nothing is similar enough). Loads the embedder, never the chat model:
        RAFT training rows (`infuse.data.synth.raft_rows(retrieve=...)`) are built from it."""
        given = self.search(question)
        given = given[: self.passages_given] if self.passages_given else given
        return [passage_text(hit, question) for hit in given]

    def answer_with(self, question: str, options: AnswerOptions) -> Answer:
        """Answer `question` from the passages retrieved for it (for a follow-up, retrieved
        for it together with the earlier user question it leans on).

        Returns an Answer whose citations are the passages cited as [n]
        (`facts["passages"]` lists every passage given); when retrieval finds nothing above
        the thresholds the model is not called and `no_answer` is True.
        """
        started = time.perf_counter()
        history = check_history(options.history)
        on_token = options.on_token
        query = retrieval_query(question, history)
        hits = self.search(query)
        retrieval_s = time.perf_counter() - started
        given = hits[: self.passages_given] if self.passages_given else hits
        passages = [
            {
                "number": n,
                "source": hit.chunk.source,
                "score": hit.score,
                "similarity": hit.similarity,
                "text": hit.chunk.text,
                "given": n <= len(given),
                "doc_id": hit.chunk.doc_id,
                "chunk_id": hit.chunk.chunk_id,
            }
            for n, hit in enumerate(hits, start=1)
        ]
        base_facts: dict[str, Any] = {"passages": passages, "retrieval_query": query}

        def decline(reason: str, **extra: Any) -> Answer:
            if on_token is not None:
                on_token(NO_ANSWER)
            timings = {"retrieval_s": retrieval_s, "total_s": time.perf_counter() - started}
            if "generation_s" in extra:
                timings["generation_s"] = extra.pop("generation_s")
            return Answer(
                text=NO_ANSWER,
                method=self.name,
                no_answer=True,
                facts={**base_facts, "declined_because": reason, **extra},
                timings=timings,
            )

        if not hits:
            return decline("no passage is similar enough to the question")
        given_texts = [hit.chunk.text for hit in given]
        missing: list[str] = []
        if self.grounded and self.max_missing_terms is not None:
            missing = missing_question_terms(query, given_texts)
            base_facts["missing_question_terms"] = missing
            specific = topic_terms(query, missing)
            if len(specific) > self.max_missing_terms:
                return decline(f"the passages do not speak of: {', '.join(specific)}")
        model = self.model
        base_facts["model"] = getattr(model, "name", "")
        messages = build_messages(question, given, self.system_prompt, history)
        # With grounding the reply is checked before anyone sees it: the answer (or the decline)
        # is streamed as one piece once checked, never an ungrounded draft.
        generation = model.generate(
            messages,
            **options.generate_keywords(
                self.max_new_tokens, self.temperature, stream=not self.grounded
            ),
        )
        raw = generation.text.strip()
        text = extract_answer(raw) if self.grounded else raw
        no_answer = NO_ANSWER.rstrip(".").lower() in text.lower()
        if self.grounded and not no_answer:
            problem = grounding_problem(text, question, given_texts)
            if problem is None and len(missing) > (self.max_missing_terms or 0):
                if not specific_evidence(text, question, given_texts):
                    problem = (f"the passages do not speak of: {', '.join(missing)}, and the answer "
                               "names nothing specific they hold")
            if problem is not None:
                return decline(
                    f"the answer is not grounded: {problem}",
                    raw_answer=raw,
                    generation_s=generation.total_s,
                    prompt_tokens=generation.prompt_tokens,
                    completion_tokens=generation.completion_tokens,
                )
        if self.grounded and on_token is not None:
            on_token(text)
        numbers = cited_numbers(raw, len(given))
        citation_mode = "cited"
        if not numbers and not no_answer:
            # Small models answer without writing [n]: name the passages that hold the
            # answer's words instead, marked as attributed (not cited by the model).
            numbers, citation_mode = attributed_numbers(text, given), "attributed"
        citations = [_citation(number, given[number - 1]) for number in numbers]
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
            method=self.name,
            citations=citations,
            timings=timings,
            no_answer=no_answer,
            facts={
                **base_facts,
                "raw_answer": raw,
                "citation_mode": citation_mode if citations else "none",
                "model": getattr(model, "name", ""),
                "mode": self.retrieval.mode,
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
            },
        )

    def close(self) -> None:
        """Close the knowledge base when this session opened it (the model stays loaded)."""
        if self._own_kb:
            self.kb.close()


def answer(
    question: str,
    kb: KnowledgeBase | str | Path | None = None,
    *,
    history: Sequence[dict[str, str]] | None = None,
    on_token: Callable[[str], None] | None = None,
    **options: Any,
) -> Answer:
    """Answer one question from the knowledge base `kb` (a KnowledgeBase, folder or URL).

    A one-shot `RagSession` opened with `options`: its own (`model`, `max_new_tokens`,
    `base_url`, ...) and, for one call, any field of `SearchSettings` (`k`, `mode`, `filters`,
    `reranker`, `min_similarity`, ...) changed from `RAG_SEARCH`. See `RagSession` for them and
    the Answer; to ask many questions open a session.
    """
    search_fields = {item.name for item in fields(SearchSettings)}
    changes = {key: options.pop(key) for key in list(options) if key in search_fields}
    if changes:
        options["retrieval"] = options.get("retrieval", RAG_SEARCH).changed(**changes)
    with RagSession(kb, lazy=True, **options) as session:
        return session.answer(question, history=history, on_token=on_token)
