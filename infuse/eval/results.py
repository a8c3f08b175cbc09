"""What an eval run produced: per-question results, per-method summaries, skips and findings.

`EvalResults.to_dict()` is the JSON the CLI prints with `--json` and writes to results.json;
the terminal table and the HTML report are rendered from the same numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from infuse.eval.methods import SkippedMethod
from infuse.eval.questions import EvalQuestion


@dataclass
class QuestionResult:
    """One method's answer to one question, scored and timed."""

    question_id: str
    method: str
    answer: str
    exact_match: float
    f1: float
    correct: float  # answerable: holds the reference and no other value; unanswerable: declined
    no_answer: bool
    total_s: float
    time_to_first_token_s: float | None = None
    context_hit: bool | None = None  # a cited passage holds the reference (None: no citations)
    source_hit: bool | None = None  # a cited passage comes from the question's source document
    judge_score: int | None = None
    cited_sources: list[str] = field(default_factory=list)
    error: str | None = None
    answerable: bool = True
    short_match: float = 0.0  # the answer's leading clause equals a reference
    contradiction: bool = False  # holds the reference and also another value of its kind
    retrieval_hit: bool | None = None  # a passage given to the model holds the answer (None: none given)
    declined_because: str | None = None  # the method's own reason for a decline (RAG, CAG)
    withheld_answer: str | None = None  # the model's answer a grounding check declined

    @property
    def hallucinated(self) -> bool:
        """An unanswerable question answered anyway (an error is not an answer)."""
        return not self.answerable and not self.no_answer and not self.error

    @property
    def wrong_decline(self) -> bool:
        """An answerable question declined."""
        return self.answerable and self.no_answer


@dataclass
class MethodSummary:
    """A method's scores and timings over the whole question set."""

    name: str
    questions: int
    accuracy: float
    exact_match: float
    f1: float
    no_answer_rate: float
    total_mean_s: float
    total_p50_s: float
    ttft_mean_s: float | None = None
    hallucination_rate: float | None = None  # of the unanswerable questions, share answered anyway
    wrong_decline_rate: float | None = None  # of the answerable questions, share declined
    short_match: float | None = None
    accuracy_interval: list[float] | None = None  # 95% paired-bootstrap interval
    retrieval_recall: float | None = None  # passages given to the model held the answer
    context_recall: float | None = None
    source_recall: float | None = None
    judge_mean: float | None = None
    setup_s: float | None = None
    training_s: float | None = None
    errors: int = 0
    wins: int = 0  # right where the reference method was wrong
    losses: int = 0  # wrong where the reference method was right
    facts: dict[str, Any] = field(default_factory=dict)


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarize_method(
    name: str,
    rows: list[QuestionResult],
    *,
    setup_s: float | None = None,
    facts: dict[str, Any] | None = None,
) -> MethodSummary:
    """Average one method's question results (rates in 0..1, times in seconds, 4 decimals)."""
    facts = dict(facts or {})
    contexts = [float(r.context_hit) for r in rows if r.context_hit is not None]
    retrieved = [float(r.retrieval_hit) for r in rows if r.retrieval_hit is not None]
    unanswerable = [r for r in rows if not r.answerable]
    answerable = [r for r in rows if r.answerable]
    sources = [float(r.source_hit) for r in rows if r.source_hit is not None]
    judged = [float(r.judge_score) for r in rows if r.judge_score is not None]
    ttfts = [r.time_to_first_token_s for r in rows if r.time_to_first_token_s is not None]
    totals = [r.total_s for r in rows]
    training = facts.get("training_s")
    return MethodSummary(
        name=name,
        questions=len(rows),
        accuracy=_mean([r.correct for r in rows]) or 0.0,
        exact_match=_mean([r.exact_match for r in rows]) or 0.0,
        f1=_mean([r.f1 for r in rows]) or 0.0,
        no_answer_rate=_mean([float(r.no_answer) for r in rows]) or 0.0,
        total_mean_s=_mean(totals) or 0.0,
        total_p50_s=round(statistics.median(totals), 4) if totals else 0.0,
        ttft_mean_s=_mean(ttfts),
        hallucination_rate=_mean([float(r.hallucinated) for r in unanswerable]),
        wrong_decline_rate=_mean([float(r.wrong_decline) for r in answerable]),
        short_match=_mean([r.short_match for r in answerable]),
        retrieval_recall=_mean(retrieved),
        context_recall=_mean(contexts),
        source_recall=_mean(sources),
        judge_mean=_mean(judged),
        setup_s=round(setup_s, 4) if setup_s is not None else None,
        training_s=round(float(training), 4) if training is not None else None,
        errors=sum(1 for r in rows if r.error),
        facts=facts,
    )


@dataclass
class EvalResults:
    """Everything one eval run measured; `to_dict()` is the machine-readable report."""

    questions: list[EvalQuestion]
    methods: list[MethodSummary]
    per_question: list[QuestionResult]
    skipped: list[SkippedMethod] = field(default_factory=list)
    reference_method: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    training_curve: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # paired differences
    recommendation: dict[str, Any] = field(default_factory=dict)

    def method(self, name: str) -> MethodSummary | None:
        """The summary of method `name`, or None when it did not run."""
        return next((m for m in self.methods if m.name == name), None)

    def results_for(self, name: str) -> list[QuestionResult]:
        """Method `name`'s per-question results, in question order."""
        return [r for r in self.per_question if r.method == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": dict(self.meta),
            "reference_method": self.reference_method,
            "methods": [asdict(m) for m in self.methods],
            "skipped": [s.to_dict() for s in self.skipped],
            "findings": list(self.findings),
            "questions": [q.to_dict() for q in self.questions],
            "per_question": [asdict(r) for r in self.per_question],
            "training_curve": list(self.training_curve),
            "comparisons": list(self.comparisons),
            "recommendation": dict(self.recommendation),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> EvalResults:
        """Rebuild results from `to_dict()` output (e.g. a results.json file)."""
        return cls(
            questions=[EvalQuestion(**q) for q in payload.get("questions", [])],
            methods=[MethodSummary(**m) for m in payload.get("methods", [])],
            per_question=[QuestionResult(**r) for r in payload.get("per_question", [])],
            skipped=[SkippedMethod(**s) for s in payload.get("skipped", [])],
            reference_method=payload.get("reference_method"),
            findings=list(payload.get("findings", [])),
            training_curve=list(payload.get("training_curve", [])),
            meta=dict(payload.get("meta", {})),
            comparisons=list(payload.get("comparisons", [])),
            recommendation=dict(payload.get("recommendation", {})),
        )
