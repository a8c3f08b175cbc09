"""Plain-words findings under the results table, each read from a measured signal.

Every check returns a `Finding` or None, so each can be tested on a case built to trigger it
and on one where it must stay quiet. `diagnose()` runs them all.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.eval.methods import DOES_NOT_FIT
from infuse.eval.results import EvalResults
from infuse.train.runs import RunRecord

BAD_ACCURACY = 0.5  # below this a method's results count as bad
BASE_ALREADY_KNOWS = 0.6  # the base model alone at or above this: little to learn
LOW_CONTEXT_RECALL = 0.7
MASKED_FRACTION = 0.05  # old run records: fewer supervised tokens than this, almost all masked
OVERFIT_RISE = 1.05  # eval loss this much above its best, at the end
HIGH_HALLUCINATION = 0.2  # unanswerable questions answered anyway, above this share
HIGH_WRONG_DECLINES = 0.2  # answerable questions declined, above this share
FORGETTING_SHARE = 0.25  # general questions the base knew and the adapter lost, from this share
FORGETTING_MIN_LOST = 2  # ... and at least this many (one miss is noise)


@dataclass
class Finding:
    """One diagnosis: a short title, the explanation with its numbers and the fix."""

    code: str
    title: str
    message: str
    signal: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fine_tuned(results: EvalResults):
    return [m for m in results.methods if m.name in ("lora", "finetune", "adapter")]


def recommended_examples(model_parameters: int) -> int:
    """A rough floor on training examples for a LoRA to pick up new facts at this model size."""
    if model_parameters < 1_000_000_000:
        return 200
    if model_parameters < 10_000_000_000:
        return 500
    return 1000


# The RunConfig fields that decide how the training file reads as conversations.
_READING_FIELDS = ("data", "merged_prompt", "output_column", "system_prompt",
                   "conversation_extension", "seed")


def _training_turns(run: RunRecord) -> tuple[frozenset[str], str] | None:
    """The run's training questions (normalised) and its answers' text (normalised, joined),
    read as the trainer reads them; None when the data file is gone or unreadable. Read once
    per file version: two checks ask."""
    try:
        version = Path(run.config.data).stat().st_mtime_ns
    except OSError:
        return None
    return _read_training_turns(tuple(getattr(run.config, name) for name in _READING_FIELDS), version)


@functools.lru_cache(maxsize=4)
def _read_training_turns(reading: tuple, _version: int) -> tuple[frozenset[str], str] | None:
    from infuse.errors import InfuseError
    from infuse.eval.scoring import normalize_answer
    from infuse.train.config import RunConfig
    from infuse.train.examples import load_conversations

    try:
        conversations = load_conversations(RunConfig(**dict(zip(_READING_FIELDS, reading, strict=True))))
    except (InfuseError, OSError):
        return None
    asked, answered = set(), []
    for turns in conversations:
        for turn in turns:
            text = normalize_answer(str(turn.get("content") or ""))
            if turn.get("role") == "user":
                asked.add(text)
            elif turn.get("role") == "assistant":
                answered.append(text)
    return frozenset(asked), " | ".join(answered)


def unseen_questions(results: EvalResults, run: RunRecord | None) -> tuple[int, int] | None:
    """(answerable questions whose fact no training row teaches, answerable questions), or
    None when unknown. A fact is taught when a training row asks the same question, or answers
    with the reference (one of 4 characters or more: "2" is in any answer)."""
    from infuse.eval.scoring import normalize_answer

    answerable = [q for q in results.questions if q.answerable]
    if run is None or not answerable:
        return None
    turns = _training_turns(run)
    if turns is None:
        return None
    asked, answered = turns

    def taught(question) -> bool:
        if normalize_answer(question.question) in asked:
            return True
        references = [normalize_answer(reference) for reference in question.references]
        return any(len(reference) >= 4 and reference in answered for reference in references)

    return sum(1 for q in answerable if not taught(q)), len(answerable)


def _mostly_unseen(results: EvalResults, run: RunRecord | None) -> tuple[int, int] | None:
    counts = unseen_questions(results, run)
    return counts if counts is not None and counts[0] * 2 > counts[1] else None


def check_asked_unseen_facts(results: EvalResults, run: RunRecord | None) -> Finding | None:
    """Fires when the fine-tune scores badly on questions about facts no training row teaches:
    its score then measures what it never saw, not what it learned (the held-out facts of a
    generated question set, or a question file about other documents than the training data)."""
    bad = [m for m in _fine_tuned(results) if m.accuracy < BAD_ACCURACY]
    counts = _mostly_unseen(results, run) if bad else None
    if counts is None:
        return None
    unseen, answerable = counts
    method = bad[0]
    return Finding(
        "asked_unseen_facts",
        "The fine-tune was asked about facts it never trained on",
        f"{unseen} of the {answerable} answerable questions are about facts no row of "
        f"{run.config.data} teaches, so {method.name}'s {method.accuracy:.0%} measures what it "
        "never saw, not what it learned: a LoRA knows a fact from its training rows, not from the "
        "documents (lora+rag reads those). To measure what the adapter learned, ask about the "
        "facts in its training data (`infuse eval --questions` with questions on them).",
        {"unseen": unseen, "answerable": answerable, "method": method.name},
    )


def check_too_little_data(results: EvalResults, run: RunRecord | None) -> Finding | None:
    """Fires when the adapter scores badly and it saw fewer examples than its model size needs
    (not when it was asked about facts it never trained on: more rows would not change that)."""
    if run is None or _mostly_unseen(results, run) is not None:
        return None
    examples, params = run.train_examples, run.model_parameters
    bad = [m for m in _fine_tuned(results) if m.accuracy < BAD_ACCURACY]
    if examples is None or params is None or not bad:
        return None
    floor = recommended_examples(int(params))
    if int(examples) >= floor:
        return None
    return Finding(
        "too_little_data",
        "Too little training data for the model size",
        f"The adapter trained on {int(examples)} examples for a {int(params) / 1e6:,.0f}M-parameter "
        f"model and answers {bad[0].accuracy:.0%} right. Aim for at least {floor} examples: "
        "write more questions per fact, phrase each fact several ways, or generate them with "
        "`infuse data synth`.",
        {"train_examples": int(examples), "model_parameters": int(params), "recommended": floor},
    )


def check_overfitting(results: EvalResults, run: RunRecord | None) -> Finding | None:
    """Fires when eval loss rose past its best while train loss kept falling."""
    if run is None:
        return None
    curve = run.curve()
    evals = [(p["step"], p["eval_loss"]) for p in curve if "eval_loss" in p]
    trains = [(p["step"], p["loss"]) for p in curve if "loss" in p]
    if len(evals) < 3 or len(trains) < 2:
        return None
    best_step, best = min(evals, key=lambda e: e[1])
    last_step, last = evals[-1]
    if last_step == best_step or last < best * OVERFIT_RISE:
        return None

    def train_near(step: int) -> float:
        window = [loss for s, loss in trains if s <= step][-5:] or [trains[0][1]]
        return sum(window) / len(window)

    train_at_best, train_at_end = train_near(best_step), train_near(last_step)
    if train_at_end >= train_at_best:
        return None
    return Finding(
        "overfitting",
        "Eval loss rising while train loss falls (overfitting)",
        f"Eval loss was lowest at step {best_step} ({best:.3f}) and rose to {last:.3f} by step "
        f"{last_step}, while train loss fell from {train_at_best:.3f} to {train_at_end:.3f}: the "
        "adapter memorises its training rows. Train fewer epochs (stop near step "
        f"{best_step}), lower the LoRA rank, or add more varied data.",
        {"best_step": best_step, "best_eval_loss": best, "last_step": last_step,
         "last_eval_loss": last, "train_loss_at_best": train_at_best, "train_loss_at_end": train_at_end},
    )


def check_labels_masked(results: EvalResults, run: RunRecord | None) -> Finding | None:
    """Fires when most training rows carried no label at all, so training learned (almost)
    nothing: the response-only mask did not find their answers.

    A small share of labelled tokens alone is no fault (a short answer after long passages, as
    in RAFT rows, is a few tokens of hundreds); rows with no label are. Records written before
    `unlabelled_examples` existed fall back to the share of labelled tokens.
    """
    if run is None:
        return None
    fraction = run.supervised_token_fraction
    unlabelled, rows = run.unlabelled_examples, run.train_examples
    if unlabelled is not None and rows:
        if unlabelled * 2 <= rows:
            return None
        what = f"{unlabelled} of the {rows} training rows carried no label at all"
    elif fraction is not None and float(fraction) < MASKED_FRACTION:
        what = f"Only {float(fraction):.1%} of the training tokens carried a label"
    else:
        return None
    return Finding(
        "labels_masked",
        "Almost all labels were masked",
        f"{what}, so the adapter barely trained. The response-only mask did not find the "
        "assistant turns: check the chat template matches the model (`infuse data inspect FILE "
        "--model ...` shows what is trained on), or train with responses-only off.",
        {"supervised_token_fraction": fraction, "unlabelled_examples": unlabelled, "train_examples": rows},
    )


def _squash(template: str) -> str:
    return "".join(template.split())


def check_template_mismatch(results: EvalResults, run: RunRecord | None) -> Finding | None:
    """Fires when the adapter was trained with one chat template and evaluated with another."""
    for method in _fine_tuned(results):
        trained = method.facts.get("train_chat_template") or (run.chat_template if run else None)
        used = method.facts.get("inference_chat_template")
        if trained and used and _squash(trained) != _squash(used):
            return Finding(
                "template_mismatch",
                "Chat template differs between training and inference",
                f"'{method.name}' was trained with one chat template and answered with another, "
                "so the model sees prompts it never trained on. Generate with the run's own "
                "template (stored in the run folder as chat_template.jinja).",
                {"method": method.name},
            )
    return None


def check_retrieval_miss(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when a retrieval method is wrong mostly because the passages lacked the answer."""
    for method in results.methods:
        if method.context_recall is None or method.context_recall >= LOW_CONTEXT_RECALL:
            continue
        rows = results.results_for(method.name)
        wrong = [r for r in rows if not r.correct]
        missed = [r for r in wrong if r.context_hit is False]
        if not wrong or len(missed) < len(wrong) / 2:
            continue
        source = (
            f" and a passage from the right document for {method.source_recall:.0%}"
            if method.source_recall is not None else ""
        )
        return Finding(
            "retrieval_miss",
            f"{method.name}: retrieval misses the answer",
            f"{method.name} retrieved the answer for {method.context_recall:.0%} of the questions"
            f"{source}. Of its {len(wrong)} wrong answers, {len(missed)} had no answer in the "
            "retrieved passages: the failure is retrieval, not generation. Retrieve more passages "
            "(top-k), use smaller chunks or hybrid search with rerank, and check every source "
            "document is in the knowledge base.",
            {"method": method.name, "context_recall": method.context_recall,
             "source_recall": method.source_recall, "wrong": len(wrong), "missed": len(missed)},
        )
    return None


def check_generation_miss(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when retrieval found the answer but the model still answered wrong, often."""
    for method in results.methods:
        if method.context_recall is None or method.context_recall < LOW_CONTEXT_RECALL:
            continue
        rows = results.results_for(method.name)
        found_but_wrong = [r for r in rows if r.context_hit and not r.correct]
        found = [r for r in rows if r.context_hit]
        if len(found_but_wrong) < max(2, len(found) / 3):
            continue
        return Finding(
            "generation_miss",
            f"{method.name}: the answer was retrieved but not used",
            f"For {len(found_but_wrong)} of the {len(found)} questions whose answer was in the "
            f"retrieved passages, {method.name} still answered wrong: the failure is generation, "
            "not retrieval. Use a larger or instruction-tuned model, fewer passages, or a "
            "stricter prompt.",
            {"method": method.name, "found": len(found), "found_but_wrong": len(found_but_wrong)},
        )
    return None


def check_cag_does_not_fit(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when CAG was skipped because the knowledge is longer than the context window."""
    for skip in results.skipped:
        if skip.code == DOES_NOT_FIT:
            return Finding(
                "cag_does_not_fit",
                "The knowledge does not fit the context window",
                # the skip's reason already says what to do (the context check's message);
                # a reason without advice gets it here
                f"{skip.name} could not run: {skip.reason.rstrip()}"
                + ("" if "longer context" in skip.reason else
                   (" " if skip.reason.rstrip().endswith(".") else ". ")
                   + "Use RAG for this knowledge, trim it, or pick a model with a longer context."),
                {"method": skip.name, **skip.facts},
            )
    return None


def check_base_already_answers(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when the base model alone already answers most questions (nothing to learn)."""
    base = results.method("base")
    if base is None or base.accuracy < BASE_ALREADY_KNOWS:
        return None
    return Finding(
        "base_already_answers",
        "The base model already knows the answers",
        f"Without any knowledge the base model answers {base.accuracy:.0%} of the questions "
        "right, so fine-tuning has little to add and the comparison says little. Make sure the "
        "questions need your documents (facts a public model cannot know).",
        {"base_accuracy": base.accuracy},
    )


def check_hallucination(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when methods answer questions the knowledge cannot answer (they make things up)."""
    offenders = [m for m in results.methods if m.name != "base"  # the base knows nothing here
                 and m.hallucination_rate is not None and m.hallucination_rate > HIGH_HALLUCINATION]
    if not offenders:
        return None
    unanswerable = sum(1 for q in results.questions if not q.answerable)
    named = ", ".join(f"{m.name} {m.hallucination_rate:.0%}" for m in offenders)
    return Finding(
        "hallucination",
        "Answers made up for questions the knowledge cannot answer",
        f"Of the {unanswerable} questions your knowledge does not answer, these methods answered "
        f"anyway instead of declining: {named}. Do not trust their answers blindly. Prefer a method "
        "that declines from evidence (RAG with its relevance threshold and grounding check), raise "
        "the threshold (`infuse ask --min-similarity`), or use a stronger model "
        "(`--model`/`--base-url`).",
        {"methods": {m.name: m.hallucination_rate for m in offenders}, "unanswerable": unanswerable},
    )


def check_wrong_declines(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when a method declines questions its knowledge does answer."""
    offenders = [m for m in results.methods if m.name != "base"
                 and m.wrong_decline_rate is not None and m.wrong_decline_rate > HIGH_WRONG_DECLINES]
    if not offenders:
        return None
    named = ", ".join(f"{m.name} {m.wrong_decline_rate:.0%}" for m in offenders)
    withheld = {
        m.name: sum(1 for r in results.per_question
                    if r.method == m.name and r.wrong_decline and r.withheld_answer)
        for m in offenders
    }
    declines = {m.name: sum(1 for r in results.per_question if r.method == m.name and r.wrong_decline)
                for m in offenders}
    said = "; ".join(f"{name}: {withheld[name]} of its {declines[name]}" for name in withheld if withheld[name])
    why = (
        f" Some of these withheld an answer the model wrote whose words or numbers are in no "
        f"passage ({said}; results.json has each one under 'withheld_answer'): usually a wrong "
        "answer kept from you, which a stronger model (`--base-url`) turns into right ones."
        if said else ""
    )
    return Finding(
        "wrong_declines",
        "Declining questions the knowledge answers",
        f"These methods said they had no answer to answerable questions: {named}.{why} Declines "
        "before asking ('declined_because' names the question terms no passage holds): if "
        "retrieval found the passage (see 'retrieved'), the thresholds are too strict: lower them "
        "(`infuse ask --min-similarity`); otherwise the knowledge base is missing the source.",
        {"methods": {m.name: m.wrong_decline_rate for m in offenders}, "withheld": withheld},
    )


SMALL_MODELS = ("smollm2",)  # packaged models too small to read real manuals well
POOR_ACCURACY = 0.5


def check_model_too_small(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Every method answers poorly on a small local model: the model is the bottleneck, and a
    stronger one (served by llama.cpp, Ollama or vLLM) is the first thing to try."""
    model = str(results.meta.get("model") or "")
    if not results.methods or results.meta.get("base_url") or model not in SMALL_MODELS:
        return None
    best = max(results.methods, key=lambda m: m.accuracy)
    if best.accuracy >= POOR_ACCURACY:
        return None
    return Finding(
        code="model_too_small",
        title=f"The model ({model}) is the bottleneck",
        message=(
            f"The best method ({best.name}) is right on {best.accuracy:.0%} of the questions with "
            f"{model}, a small model that reads long passages poorly. A stronger model is the first "
            "thing to try: serve one with llama.cpp (`llama-server -m MODEL.gguf --port 8080`), "
            "Ollama or vLLM and add `--base-url http://127.0.0.1:8080/v1 --model NAME`; "
            "`--model` also takes a local GGUF file or Hugging Face folder."
        ),
        signal={"model": model, "best_method": best.name, "best_accuracy": best.accuracy},
    )


def check_forgetting(results: EvalResults, run: RunRecord | None = None) -> Finding | None:
    """Fires when the adapter lost general knowledge the base model had (`infuse.eval.forgetting`)."""
    forgetting = results.meta.get("forgetting")
    if not forgetting or not forgetting.get("known_by_base"):
        return None
    known, lost = len(forgetting["known_by_base"]), forgetting.get("lost", [])
    if len(lost) < FORGETTING_MIN_LOST or len(lost) / known < FORGETTING_SHARE:
        return None
    examples = "; ".join(f"{item['question']} base: {item['base']!r}, adapter: {item['adapter']!r}"
                         for item in lost[:2])
    return Finding(
        "forgetting",
        "The fine-tune made the model forget what it knew",
        f"Of {known} general questions the base model answered right, the adapter got "
        f"{len(lost)} wrong ({len(lost) / known:.0%}), e.g. {examples}. Train less (fewer epochs, "
        "a lower learning rate or LoRA rank), mix general question/answer rows into the training "
        "data, or use RAG, which leaves the model as it is.",
        {"known_by_base": known, "lost": len(lost), "lost_share": len(lost) / known},
    )


CHECKS = (
    check_model_too_small,
    check_base_already_answers,
    check_asked_unseen_facts,
    check_too_little_data,
    check_overfitting,
    check_labels_masked,
    check_template_mismatch,
    check_retrieval_miss,
    check_generation_miss,
    check_cag_does_not_fit,
    check_hallucination,
    check_wrong_declines,
    check_forgetting,
)


def diagnose(results: EvalResults, run: RunRecord | None = None) -> list[Finding]:
    """Run every check; return the findings that fired, in a fixed order."""
    return [finding for check in CHECKS if (finding := check(results, run)) is not None]
