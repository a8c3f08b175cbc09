"""Turn documents into question/answer pairs with a chat model, so documents alone can train.

Documents are read by the knowledge base's reader and cut by its chunker (`infuse.knowledge`);
the model is asked for N pairs per chunk in a fixed `Q: ... / A: ...` format; every pair is
parsed, validated (a real question, a short answer), kept only when its answer is *grounded*
(found word for word in the chunk), deduplicated, and split into train and held-out rows.

Sized to the machine: `max_pairs`, `max_chunks` and `time_budget_s` bound the work, and the
chunks asked about are sampled round-robin over the documents (every document's first chunk
before any document's second), so a cap still covers every document. Progress goes to
`on_progress(done, total, **info)` with the pairs kept so far and an estimate of the seconds left.

Rows are written as JSONL with `id`, `question`, `answer`, `source` (what `infuse eval`
reads) and `messages` (the user/assistant conversation `infuse train` reads).
"""

from __future__ import annotations

import json
import random
import re
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError, DataError
from infuse.files import write_text_atomic
from infuse.knowledge.documents import Document
from infuse.knowledge.reading import ReadResult

SYNTH_SYSTEM = (
    "You write quiz questions about a document. Each question must be answerable from the text "
    "alone, and its answer must be a short phrase copied exactly from the text (a number, a name, "
    "a date or a few words)."
)
SYNTH_USER = (
    "Text:\n\"\"\"\n{chunk}\n\"\"\"\n\nWrite {count} different question/answer pairs about this "
    "text. Use exactly this format, one pair after the other, nothing else:\n"
    "Q: <question>\nA: <short answer copied from the text>\n"
)


@dataclass
class QAPair:
    """One generated question with its answer and where it came from."""

    question: str
    answer: str
    source: str
    chunk: int = 0
    origin: str = "model"  # "model" (written by the chat model) | "text" (text_questions templates)

    def to_row(self, row_id: str) -> dict[str, Any]:
        row = {
            "id": row_id,
            "question": self.question,
            "answer": self.answer,
            "source": self.source,
            "tags": [f"from-{self.origin}"],
            "messages": [
                {"role": "user", "content": self.question},
                {"role": "assistant", "content": self.answer},
            ],
        }
        if self.origin == "text":
            from infuse.data.text_questions import answer_aliases

            aliases = answer_aliases(self.answer)
            if aliases:
                row["aliases"] = aliases
        return row


@dataclass
class SynthResult:
    """Kept pairs split into train and held-out, and the rejected ones with their reason."""

    train: list[QAPair] = field(default_factory=list)
    heldout: list[QAPair] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (question, answer, why)
    chunks: int = 0  # chunks in the documents
    chunks_asked: int = 0  # chunks the model was asked about
    documents: int = 0
    documents_covered: int = 0  # documents with at least one chunk asked about
    stopped: str | None = None  # why generation ended early: "max_pairs" | "time_budget" | "model_unusable"
    elapsed_s: float = 0.0
    from_text: int = 0  # kept pairs read off the text (text_questions), not written by the model

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": len(self.train),
            "heldout": len(self.heldout),
            "rejected": len(self.rejected),
            "chunks": self.chunks,
            "chunks_asked": self.chunks_asked,
            "documents": self.documents,
            "documents_covered": self.documents_covered,
            "stopped": self.stopped,
            "from_text": self.from_text,
            "elapsed_s": round(self.elapsed_s, 1),
        }


def read_documents(paths: Iterable[str | Path]) -> ReadResult:
    """Read files and folders with the knowledge base's reader (`infuse.knowledge.read_paths`:
    text, Markdown, HTML, PDF, DOCX, man pages ...). Files that cannot be read are in
    `.skipped` with the reason.

    Raises DataError for a path that does not exist, or when no document has text.
    """
    from infuse.knowledge.reading import read_paths

    paths = list(paths)
    for path in map(Path, paths):
        if not path.exists() and not any(char in str(path) for char in "*?["):
            raise DataError(f"Knowledge path {path} does not exist.")
    result = read_paths(paths)
    if not result.documents:
        reasons = "; ".join(item["reason"] for item in result.skipped[:3])
        raise DataError(
            f"No text found in {', '.join(map(str, paths))}" + (f" ({reasons})" if reasons else "") + "."
        )
    return result


def document_chunks(document: Document, max_tokens: int = 300) -> list[str]:
    """A document cut into passages to write questions about: the knowledge base's chunker,
    without overlap (overlapping passages would yield the same question twice)."""
    from infuse.knowledge.chunking import chunk_document

    return [chunk.text for chunk in chunk_document(document, max_tokens=max_tokens, overlap_tokens=0)]


def sample_chunks(
    chunked: Sequence[tuple[str, list[str]]], max_chunks: int | None = None, *, seed: int = 0
) -> list[tuple[str, int, str]]:
    """Pick up to `max_chunks` (source, index, text) chunks round-robin over the documents:
    each document's chunks in a seeded random order, one per document per round, so every
    document is asked about before any is asked about twice. None: every chunk."""
    rng = random.Random(seed)
    queues = []
    for source, chunks in chunked:
        order = list(range(len(chunks)))
        rng.shuffle(order)
        queues.append([(source, index, chunks[index]) for index in order])
    picked: list[tuple[str, int, str]] = []
    round_ = 0
    while any(round_ < len(queue) for queue in queues):
        for queue in queues:
            if round_ < len(queue):
                if max_chunks is not None and len(picked) >= max_chunks:
                    return picked
                picked.append(queue[round_])
        round_ += 1
    return picked


_PAIR = re.compile(
    r"^\s*(?:\d+[.)]\s*)?(?:\*\*)?(?:Q|Question)\s*\d*\s*[:.](?:\*\*)?\s*(?P<q>.+?)\s*\n"
    r"\s*(?:\*\*)?(?:A|Answer)\s*\d*\s*[:.](?:\*\*)?\s*(?P<a>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_qa_pairs(reply: str) -> list[tuple[str, str]]:
    """Read `Q: ...` / `A: ...` pairs from a model reply (numbering and bold markers allowed)."""
    return [(m.group("q").strip(), m.group("a").strip().strip('"')) for m in _PAIR.finditer(reply)]


def _words(text: str) -> list[str]:
    table = str.maketrans({ch: " " for ch in string.punctuation})
    return text.lower().translate(table).split()


def is_grounded(answer: str, chunk: str) -> bool:
    """True when the answer's words appear, in order and adjacent, in the chunk."""
    needle, haystack = _words(answer), _words(chunk)
    width = len(needle)
    return bool(needle) and any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def validate_pair(question: str, answer: str, chunk: str, *, max_answer_words: int = 12) -> str | None:
    """Why a pair is rejected (None when it is kept)."""
    if len(_words(question)) < 3 or not question.rstrip().endswith("?"):
        return "not a question"
    if not answer.strip():
        return "empty answer"
    if len(_words(answer)) > max_answer_words:
        return f"answer longer than {max_answer_words} words"
    if not is_grounded(answer, chunk):
        return "answer not found in the text"
    if set(_words(answer)) <= set(_words(question)):
        return "answer repeats the question"
    return None


def synthesize_qa(
    documents: Sequence[Document | tuple[str, str]],
    chat_model,
    *,
    per_chunk: int = 3,
    holdout: float = 0.2,
    seed: int = 0,
    max_chunk_tokens: int = 300,
    max_answer_words: int = 12,
    max_new_tokens: int = 384,
    max_pairs: int | None = None,
    max_chunks: int | None = None,
    time_budget_s: float | None = None,
    text_pairs: bool = True,
    give_up_after: int | None = 4,
    on_progress: Callable[..., None] | None = None,
) -> SynthResult:
    """Generate, validate, dedupe and split question/answer pairs for `documents`.

    `documents` are `Document`s (from `read_documents`) or (source name, text) pairs;
    `chat_model` is any infuse ChatModel. Work stops at `max_pairs` kept pairs, after
    `max_chunks` chunks (sampled over every document, see `sample_chunks`; default: as many as
    `max_pairs` needs at `per_chunk`, or all) or when the next chunk would pass `time_budget_s`
    seconds; `result.stopped` says which. A model whose first `give_up_after` chunks give no
    usable pair is asked no more (`stopped="model_unusable"`: a small model echoes the format or
    invents answers). With `text_pairs`, pairs read off the text itself (`text_questions`,
    every answer a span of its chunk) fill what the model left short of `max_pairs` (with no
    cap: only when the model gave none).
    `on_progress(done, total, file=..., pairs=..., eta_s=...)` is called after each chunk.
    Raises ConfigError for bad settings.
    """
    if per_chunk < 1:
        raise ConfigError(f"per_chunk={per_chunk}: ask for at least 1 pair per chunk.")
    if not 0.0 <= holdout < 1.0:
        raise ConfigError(f"holdout={holdout}: give a fraction from 0 up to (not including) 1.")
    for name, value in (("max_pairs", max_pairs), ("max_chunks", max_chunks)):
        if value is not None and value < 1:
            raise ConfigError(f"{name}={value}: give at least 1 (or leave it out for no cap).")
    if time_budget_s is not None and time_budget_s <= 0:
        raise ConfigError(f"time_budget_s={time_budget_s}: give a number of seconds above 0.")
    chunked = []
    for document in documents:
        if not isinstance(document, Document):
            name, text = document
            document = Document(text=text, source=name)
        source = Path(document.source).name or document.source
        chunked.append((source, document_chunks(document, max_chunk_tokens)))
    if max_chunks is None and max_pairs is not None:
        # about half the asked pairs survive the checks on a small model: ask for twice as many
        max_chunks = max(len(chunked), -(-2 * max_pairs // per_chunk))
    work = sample_chunks(chunked, max_chunks, seed=seed)
    result = SynthResult(chunks=sum(len(chunks) for _source, chunks in chunked),
                         documents=len(chunked))
    kept: list[QAPair] = []
    seen: set[str] = set()
    covered: set[str] = set()
    started = time.monotonic()

    def keep(question: str, answer: str, chunk: str, pair: QAPair) -> None:
        why = validate_pair(question, answer, chunk, max_answer_words=max_answer_words)
        key = " ".join(_words(question))
        if why is None and key in seen:
            why = "duplicate question"
        if why:
            result.rejected.append((question, answer, why))
            return
        seen.add(key)
        kept.append(pair)

    for done, (source, index, chunk) in enumerate(work, start=1):
        elapsed = time.monotonic() - started
        if time_budget_s is not None and done > 1 and elapsed + elapsed / (done - 1) > time_budget_s:
            result.stopped = "time_budget"
            break
        if give_up_after is not None and done > give_up_after and not kept:
            result.stopped = "model_unusable"
            break
        messages = [
            {"role": "system", "content": SYNTH_SYSTEM},
            {"role": "user", "content": SYNTH_USER.format(chunk=chunk, count=per_chunk)},
        ]
        reply = chat_model.generate(messages, max_new_tokens=max_new_tokens, temperature=0.0).text
        result.chunks_asked += 1
        covered.add(source)
        for question, answer in parse_qa_pairs(reply)[:per_chunk]:
            keep(question, answer, chunk, QAPair(question, answer, source, index))
        if on_progress:
            elapsed = time.monotonic() - started
            left = elapsed / done * (len(work) - done)
            if time_budget_s is not None:
                left = min(left, max(0.0, time_budget_s - elapsed))
            on_progress(done, len(work), file=source, pairs=len(kept), eta_s=round(left, 1))
        if max_pairs is not None and len(kept) >= max_pairs:
            kept = kept[:max_pairs]
            result.stopped = "max_pairs" if done < len(work) else None
            break
    if text_pairs and (len(kept) < max_pairs if max_pairs is not None else not kept):
        from infuse.data.text_questions import LICENCE_NAMES
        from infuse.data.text_questions import text_pairs as read_pairs

        model_kept = len(kept)
        for source, index, chunk in sample_chunks(chunked, None, seed=seed):
            if max_pairs is not None and len(kept) >= max_pairs:
                break
            if LICENCE_NAMES.match(Path(source).name):
                continue  # a licence's wording makes no question a user would ask
            for question, answer in read_pairs(chunk, max_pairs=per_chunk,
                                               max_answer_words=max_answer_words):
                keep(question, answer, chunk, QAPair(question, answer, source, index, "text"))
                covered.add(source)
        kept = kept[:max_pairs] if max_pairs is not None else kept
        result.from_text = len(kept) - model_kept
    result.documents_covered = len(covered)
    result.elapsed_s = time.monotonic() - started
    order = list(range(len(kept)))
    random.Random(seed).shuffle(order)
    held = round(len(kept) * holdout)
    if holdout > 0 and held == 0 and len(kept) >= 2:
        held = 1
    held_set = set(order[:held])
    result.train = [p for i, p in enumerate(kept) if i not in held_set]
    result.heldout = [p for i, p in enumerate(kept) if i in held_set]
    return result


def write_pairs(pairs: list[QAPair], path: str | Path, *, id_prefix: str = "syn") -> Path:
    """Write pairs as JSONL (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(
        json.dumps(pair.to_row(f"{id_prefix}{i + 1:04d}"), ensure_ascii=False) + "\n"
        for i, pair in enumerate(pairs)
    )
    return write_text_atomic(path, lines)


def heldout_path(output: str | Path) -> Path:
    """Where the held-out split goes beside `output`: QA.jsonl -> QA.heldout.jsonl."""
    output = Path(output)
    return output.with_name(f"{output.stem}.heldout{output.suffix or '.jsonl'}")


# Knowledge injection: a fine-tune learns a new fact from many wordings of it (Ovadia et al.,
# EMNLP 2024; EntiGraph, ICLR 2025), and learns to read retrieved passages from questions asked
# over passages that include distractors (RAFT, 2024). The wordings are templates, not a model:
# the 135M default paraphrases badly, and templates keep every answer word for word grounded.
QUESTION_WORDINGS = (
    "{q}",
    "Quick question: {q}",
    "{q} Please answer briefly.",
    "I'd like to know: {q}",
    "Can you tell me this? {q}",
)
RESTATE_WORDINGS = (
    "What does {where} say about {topic}?",
    "Tell me what you know about {topic}.",
)


def _training_row(messages: list[dict[str, str]], source: str, kind: str) -> dict[str, Any]:
    return {"messages": messages, "source": source, "augmentation": kind}


def paraphrase_rows(
    rows: Sequence[dict[str, Any]], *, variants: int = 3, seed: int = 0
) -> list[dict[str, Any]]:
    """`variants` differently worded copies of each user/assistant training row (the original
    wording is not repeated); the answer stays word for word."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        question, answer = _question_answer(row)
        wordings = list(QUESTION_WORDINGS[1:])
        rng.shuffle(wordings)
        for wording in wordings[:variants]:
            out.append(
                _training_row(
                    [{"role": "user", "content": wording.format(q=question)},
                     {"role": "assistant", "content": answer}],
                    row.get("source", ""),
                    "paraphrase",
                )
            )
    return out


def _question_answer(row: dict[str, Any]) -> tuple[str, str]:
    messages = row.get("messages")
    if isinstance(messages, list):
        users = [m["content"] for m in messages if m.get("role") == "user"]
        answers = [m["content"] for m in messages if m.get("role") == "assistant"]
        if users and answers:
            return users[-1], answers[-1]
    return str(row.get("question", "")), str(row.get("answer", ""))


def restatement_rows(documents: Sequence[Document], *, max_chunk_tokens: int = 200) -> list[dict[str, Any]]:
    """Each passage of the documents restated as answers: "What does <doc> say about <section>?"
    and "Tell me what you know about <section>." -> the passage's text."""
    from infuse.knowledge.chunking import chunk_document

    out = []
    for document in documents:
        source = Path(document.source).name or document.source
        for chunk in chunk_document(document, max_tokens=max_chunk_tokens, overlap_tokens=0):
            lines = [line for line in chunk.text.splitlines() if line.strip()]
            body = "\n".join(lines[1:]) if len(lines) > 1 else chunk.text
            headings = [h for h in chunk.heading_path if h] or [chunk.title or source]
            topic = headings[-1].rstrip("?.!: ")
            where = chunk.title or source
            for wording in RESTATE_WORDINGS:
                question = wording.format(where=where, topic=topic)
                out.append(_training_row(
                    [{"role": "user", "content": question},
                     {"role": "assistant", "content": body.strip()}],
                    source,
                    "restatement",
                ))
    return out


def _overlap(a: str, b: str) -> int:
    return len(set(_words(a)) & set(_words(b)))


def raft_rows(
    rows: Sequence[dict[str, Any]],
    documents: Sequence[Document],
    *,
    distractors: int = 2,
    max_chunk_tokens: int = 200,
    seed: int = 0,
    retrieve: Callable[[str], list[str]] | None = None,
    max_rows: int | None = None,
) -> list[dict[str, Any]]:
    """RAFT-style rows for LoRA+RAG: the question asked over passages the way RAG asks it
    (`infuse.conversation.passages_messages`), the passage holding the answer among
    `distractors` others (the most similar wrong ones first), the answer as the target.

    With `retrieve(question) -> passage texts` (what RAG would show the model: see
    `infuse.rag.RagSession.passages`) the passages are the retrieved ones, cut as RAG cuts
    them, and a row is kept only when they hold the answer (its numbers and most of its
    words). Without it the right passage is the chunk of the row's source (when given) that
    shares most words with the answer and question. Rows whose answer no passage supports are
    left out; `max_rows` keeps the first of each answer first (every fact once, then repeats).
    """
    from infuse.conversation import passages_messages
    from infuse.knowledge.chunking import chunk_document

    chunks: list[tuple[str, str]] = []
    for document in documents:
        source = Path(document.source).name or document.source
        chunks += [(source, chunk.text)
                   for chunk in chunk_document(document, max_tokens=max_chunk_tokens, overlap_tokens=0)]
    if not chunks and retrieve is None:
        return []
    rng = random.Random(seed)
    out = []
    for row in _facts_first(rows):
        if max_rows is not None and len(out) >= max_rows:
            break
        question, answer = _question_answer(row)
        source = Path(str(row.get("source", ""))).name
        if retrieve is not None:
            passages = retrieve(question)
            if not supports(answer, passages):
                continue
            where = source
        else:
            pool = [c for c in chunks if c[0] == source] or chunks
            gold = max(pool, key=lambda c: (2 * _overlap(answer, c[1]) + _overlap(question, c[1])))
            if _overlap(answer, gold[1]) == 0:
                continue
            others = sorted(
                (c for c in chunks if c is not gold),
                key=lambda c: -_overlap(question, c[1]),
            )[: distractors * 2]
            rng.shuffle(others)
            passages = [gold[1], *[c[1] for c in others[:distractors]]]
            rng.shuffle(passages)
            where = gold[0]
        messages = passages_messages(question, passages)
        messages.append({"role": "assistant", "content": answer})
        out.append(_training_row(messages, where, "raft"))
    return out


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def supports(answer: str, passages: Sequence[str]) -> bool:
    """True when the passages hold the answer: every number in it and at least half of its
    longer words (a cheap check; RAG's own grounding check is stricter)."""
    joined = " ".join(passages)
    numbers = set(_NUMBER.findall(joined))
    if any(number not in numbers for number in _NUMBER.findall(answer)):
        return False
    words = {word for word in _words(answer) if len(word) > 3}
    return not words or len(words & set(_words(joined))) * 2 >= len(words)


def _facts_first(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the first row of each distinct answer first, then the others (in order)."""
    seen: set[str] = set()
    first, rest = [], []
    for row in rows:
        answer = " ".join(_words(_question_answer(row)[1]))
        (rest if answer in seen else first).append(row)
        seen.add(answer)
    return first + rest


# Questions about things the documents do not hold, answered with a decline, so a fine-tune
# learns to say it does not know instead of inventing (Gekhman et al., 2024: facts a fine-tune
# did not learn raise hallucination). Each asks about a name the documents use and something
# no document mentions (the attribute's words are checked against every document).
DECLINE_ANSWER = "I don't know."
DECLINES_PER_PAIR = 1 / 6  # questions the documents do not answer, per training pair
MIN_DECLINES = 8
DECLINE_QUESTIONS = (
    "Who designed the logo of {name}?",
    "What is the stock ticker symbol of {name}?",
    "What is the fax number of {name}?",
    "How many patents does {name} hold?",
    "What colour is the packaging of {name}?",
    "Which programming language is {name} written in?",
    "What is the market share of {name}?",
    "Who is the head of marketing at {name}?",
    "What was the launch price of {name} in Japan?",
    "How many downloads does the mobile app of {name} have?",
    "Which design award did {name} win?",
    "What is the postal code of the second office of {name}?",
    "How many Instagram followers does {name} have?",
    "What is the favourite food of {name}?",
)
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]+(?:[ -][A-Z0-9][A-Za-z0-9]*)+\b")
_NAME_OPENERS = frozenset("the a an my all can in on every our your this that each if how what".split())
_NOT_NAMES = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday eur usd gbp chf".split()
)
_FILLER = frozenset(
    "who what which how many much is the of at in does do did have has a an was were win".split()
)


def document_names(
    documents: Sequence[Document], *, asked: Sequence[str] = (), limit: int = 8
) -> list[str]:
    """Proper names the documents use (capitalised runs of two or more words: products,
    teams, people), those the `asked` questions name first, then the most frequent."""
    counts: dict[str, int] = {}
    texts = [*asked, *asked, *asked, *(document.text for document in documents)]
    for text in texts:
        for match in _NAME.finditer(text):
            words = match.group(0).split()
            while words and words[0].lower() in _NAME_OPENERS:
                words = words[1:]
            if len(words) >= 2 and not any(word.lower() in _NOT_NAMES for word in words):
                name = " ".join(words)
                counts[name] = counts.get(name, 0) + 1
    return sorted(counts, key=lambda name: -counts[name])[:limit]


def decline_count(pairs: int) -> int:
    """How many decline rows go with `pairs` training pairs (a sixth of them, at least 8)."""
    return max(MIN_DECLINES, round(pairs * DECLINES_PER_PAIR))


def decline_rows(
    documents: Sequence[Document],
    *,
    count: int,
    asked: Sequence[str] = (),
    seed: int = 0,
    answer: str = DECLINE_ANSWER,
) -> list[dict[str, Any]]:
    """`count` training rows asking about names in the documents (those the `asked` training
    questions name first) and something no document mentions, answered with `answer` (a
    decline). Empty when the documents use no names."""
    names = document_names(documents, asked=asked)
    text_words = {word[:5] for document in documents for word in _words(document.text)}
    templates = [
        template for template in DECLINE_QUESTIONS
        if any(word[:5] not in text_words
               for word in _words(template.replace("{name}", "")) if word not in _FILLER)
    ]
    pairs = [(template, name) for template in templates for name in names]
    random.Random(seed).shuffle(pairs)
    out = []
    for template, name in pairs[:count]:
        out.append(_training_row(
            [{"role": "user", "content": template.format(name=name)},
             {"role": "assistant", "content": answer}],
            "",
            "decline",
        ))
    return out


def augment_rows(
    rows: Sequence[dict[str, Any]],
    documents: Sequence[Document],
    *,
    variants: int = 2,
    restate: bool = True,
    raft: bool = True,
    declines: int = 0,
    retrieve: Callable[[str], list[str]] | None = None,
    max_raft: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Training rows plus knowledge-injection augmentation: the originals, `variants` rewordings
    of each, the documents' passages restated, RAFT rows (question over passages with
    distractors, from `retrieve` when given, at most `max_raft`) for LoRA+RAG and `declines`
    questions the documents do not answer, answered with a decline. Rows are in a fixed
    shuffled order."""
    out = [dict(row, augmentation=row.get("augmentation", "original")) for row in rows]
    if variants:
        out += paraphrase_rows(rows, variants=variants, seed=seed)
    if restate:
        out += restatement_rows(documents)
    if raft:
        out += raft_rows(rows, documents, seed=seed, retrieve=retrieve, max_rows=max_raft)
    if declines:
        asked = [_question_answer(row)[0] for row in rows]
        out += decline_rows(documents, count=declines, asked=asked, seed=seed)
    random.Random(seed).shuffle(out)
    return out


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write training rows as JSONL (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def pair_rows(pairs: Sequence[QAPair], id_prefix: str = "syn") -> list[dict[str, Any]]:
    """QAPairs as training rows (see `QAPair.to_row`)."""
    return [pair.to_row(f"{id_prefix}{i + 1:04d}") for i, pair in enumerate(pairs)]


def unanswerable_rows(
    pairs: Sequence[QAPair], documents: Sequence[Document], count: int, *, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to `count` held-out questions the documents cannot answer (`"answer": null`), so an
    eval on generated questions measures hallucination too (see `text_questions`)."""
    from infuse.data.text_questions import unanswerable_questions

    corpus = "\n".join(document.text for document in documents)
    made = unanswerable_questions([pair.question for pair in pairs], corpus, count, seed=seed)
    return [
        {"id": f"unans{i + 1:04d}", "question": question, "answer": None,
         "tags": ["unanswerable", "generated"], "note": note}
        for i, (question, note) in enumerate(made)
    ]


def augmented_path(output: str | Path) -> Path:
    """Where the augmented training rows go beside `output`: QA.jsonl -> QA.augmented.jsonl."""
    output = Path(output)
    return output.with_name(f"{output.stem}.augmented{output.suffix or '.jsonl'}")
