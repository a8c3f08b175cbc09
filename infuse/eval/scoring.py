"""Scores for one answer against its reference(s).

SQuAD-style normalisation (lower case, punctuation and the articles a/an/the removed,
whitespace collapsed), with two additions so short factual answers compare fairly:
"€" reads as "eur" and "%" as "percent".

- `exact_match`: the normalised answer equals a normalised reference.
- `token_f1`: token overlap F1 against the best reference.
- `contains_answer`: a normalised reference appears as a whole-token run inside the answer
  (chat models answer in sentences: "The refund window is 38 days." holds "38 days").
- `contradicts`: the answer also states a value the references do not hold (two answers at
  once, an invented default appended), so "contains" alone would flatter it.
- `short_answer_match`: the answer's leading clause, normalised, equals a reference.
- `answer_in_context`: the same test on retrieved text (did retrieval find the answer?).
- `is_no_answer`: the answer declines ("I don't know", "the knowledge base has no answer").
- `judge_answer`: an optional 1-5 grade from an LLM judge (any `ChatModel`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)

NO_ANSWER_PATTERNS = [
    r"\bi (?:do not|don't|dont) know\b",
    r"\bno answer\b",
    r"\b(?:cannot|can't|can not|could not|couldn't|unable to) (?:find|answer|determine|tell)\b",
    r"\b(?:no|not enough) (?:relevant )?information\b",
    r"\bnot (?:mentioned|stated|provided|found|given|specified) in\b",
    r"\b(?:does|do) not (?:contain|mention|say|provide)\b",
    r"\bi'?m not sure\b",
    r"\bunknown\b",
]
_NO_ANSWER = re.compile("|".join(NO_ANSWER_PATTERNS))


def normalize_answer(text: str) -> str:
    """Lower-case, map €/% to words, drop punctuation and articles, collapse whitespace."""
    text = str(text).lower().replace("€", " eur ").replace("%", " percent ")
    text = "".join(" " if ch in "-/–—" else ch for ch in text)
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def _as_list(references: str | Sequence[str]) -> list[str]:
    return [references] if isinstance(references, str) else [str(r) for r in references]


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised reference, else 0.0."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(ref) for ref in _as_list(references)))


def _f1(prediction_tokens: list[str], reference_tokens: list[str]) -> float:
    if not prediction_tokens or not reference_tokens:
        return float(prediction_tokens == reference_tokens)
    common = Counter(prediction_tokens) & Counter(reference_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """Token-overlap F1 (SQuAD) between the prediction and its best-matching reference."""
    prediction_tokens = _tokens(prediction)
    return max(_f1(prediction_tokens, _tokens(ref)) for ref in _as_list(references))


def _contains_tokens(haystack: list[str], needle: list[str]) -> bool:
    if not needle:
        return False
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def contains_answer(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 when any normalised reference appears as a whole-token run in the prediction."""
    haystack = _tokens(prediction)
    return float(any(_contains_tokens(haystack, _tokens(ref)) for ref in _as_list(references)))


_VALUE = re.compile(r"(\d+(?:[.,]\d+)*)\s*(%|[a-z€$£]+)?", re.IGNORECASE)


def _values(text: str) -> set[tuple[str, str]]:
    """(number, unit) pairs: "45 days" -> ("45", "day"); "2016" -> ("2016", "")."""
    found = set()
    for number, unit in _VALUE.findall(str(text).lower()):
        unit = (unit or "").rstrip("s") if len(unit or "") > 2 else (unit or "")
        found.add((number.replace(",", ""), unit))
    return found


def _same_kind(value: tuple[str, str], reference: tuple[str, str]) -> bool:
    if reference[1]:
        return value[1] == reference[1]
    return len(value[0].split(".")[0]) == len(reference[0].split(".")[0])


def contradicts(prediction: str, references: str | Sequence[str], question: str = "") -> bool:
    """True when the answer also states another value of the reference's kind: "45 days or 30
    days" for "45 days", "2016 or 2018" for "2016" (two answers at once, an invented default
    appended). A value of another kind ("45 days, a 10% fee") or one the question holds is fine.
    """
    reference_values = set().union(*(_values(ref) for ref in _as_list(references)))
    if not reference_values:
        return False
    accepted = {number for number, _unit in reference_values}
    asked = {number for number, _unit in _values(question)}
    for value in _values(prediction):
        if value[0] in accepted or value[0] in asked:
            continue
        if any(_same_kind(value, reference) for reference in reference_values):
            return True
    return False


_LEAD_IN = re.compile(
    r"^(?:(?:the )?answer(?: is)?[:\s]+|it is |it's |that is |according to [^,]+, )", re.IGNORECASE
)


def short_answer(text: str) -> str:
    """The answer's leading clause: the first sentence without a lead-in ("The answer is ...")."""
    first = re.split(r"(?<=[.!?])\s+|\n", str(text).strip(), maxsplit=1)[0]
    return _LEAD_IN.sub("", first).strip().rstrip(".!")


def short_answer_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 when the answer's leading clause, normalised, equals a reference (a strict EM for
    chat models that answer in one short sentence), else 0.0."""
    if exact_match(prediction, references):
        return 1.0
    return exact_match(short_answer(prediction), references)


def answer_in_context(contexts: Iterable[str], references: str | Sequence[str]) -> bool:
    """True when any retrieved passage contains a reference answer (whole tokens, normalised)."""
    refs = [_tokens(ref) for ref in _as_list(references)]
    for context in contexts:
        haystack = _tokens(context)
        if any(_contains_tokens(haystack, ref) for ref in refs):
            return True
    return False


def is_no_answer(text: str) -> bool:
    """True when an answer is empty or declines to answer."""
    lowered = " ".join(str(text).lower().replace("’", "'").split())
    return not lowered or bool(_NO_ANSWER.search(lowered))


# ----------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM = (
    "You grade answers to questions about a company's internal documents. "
    "Compare the candidate answer with the reference answer and reply with one line: "
    "'Score: N' where N is 1 to 5. 5 = states the reference fact correctly; 4 = correct "
    "with minor extra or missing detail; 3 = partly correct; 2 = mostly wrong; "
    "1 = wrong, empty or a refusal."
)


@dataclass
class JudgeVerdict:
    """A judge's grade (1-5, None when its reply held no grade) and its raw reply."""

    score: int | None
    raw: str


def judge_messages(question: str, references: str | Sequence[str], prediction: str) -> list[dict]:
    """The chat messages sent to the judge for one answer."""
    refs = " | ".join(_as_list(references))
    user = (
        f"Question: {question}\nReference answer: {refs}\nCandidate answer: {prediction}\n"
        "Grade the candidate. Reply 'Score: N'."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_SCORE_LINE = re.compile(r"score\s*[:=]?\s*\**\s*([1-5])(?:\s*/\s*5)?", re.IGNORECASE)
_LONE_DIGIT = re.compile(r"(?<![\d.])([1-5])(?![\d.])")


def parse_judge_score(reply: str) -> int | None:
    """Read a 1-5 grade from a judge reply ('Score: 4', '4/5', '**4**'); None when absent."""
    match = _SCORE_LINE.search(reply)
    if match:
        return int(match.group(1))
    digits = _LONE_DIGIT.findall(reply)
    return int(digits[0]) if len(set(digits)) == 1 else None


def judge_answer(chat_model, question: str, references: str | Sequence[str], prediction: str) -> JudgeVerdict:
    """Ask `chat_model` (any infuse ChatModel) to grade `prediction`; greedy, short reply."""
    generation = chat_model.generate(
        judge_messages(question, references, prediction), max_new_tokens=16, temperature=0.0
    )
    return JudgeVerdict(score=parse_judge_score(generation.text), raw=generation.text)


def load_judge(base_url: str, model: str | None = None, api_key: str | None = None):
    """A ChatModel for judging, served by an OpenAI-compatible endpoint at `base_url`.

    `model` is the served model's name (servers that serve one model, like llama.cpp's,
    accept any name; "default" is sent when none is given).
    """
    from infuse.llm import load_chat_model

    return load_chat_model(model or "default", base_url=base_url, api_key=api_key)
