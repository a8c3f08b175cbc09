"""Each diagnosis fires on a case built to trigger it and stays quiet on one that should not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_fakes import QUESTIONS, DictMethod

from infuse.errors import DataError
from infuse.eval import diagnosis
from infuse.eval.methods import DOES_NOT_FIT, MISSING, SkippedMethod
from infuse.eval.runinfo import load_run
from infuse.eval.runner import run_eval
from infuse.train.config import RunConfig
from infuse.train.runs import RunRecord

RIGHT = {"q1": "38 days", "q2": "Oskar Lindqvist", "q3": "Pip", "q4": "64"}


def _results(*methods, skipped=()):
    return run_eval(QUESTIONS, list(methods), skipped=list(skipped))


def _run(tmp_path: Path, metrics=(), summary=None, template=None) -> RunRecord:
    return RunRecord(config=RunConfig(), run_dir=tmp_path, metrics=list(metrics), chat_template=template,
                     **dict(summary or {}))


def _codes(results, run=None):
    return [f.code for f in diagnosis.diagnose(results, run)]


# --- base model already answering ------------------------------------------------------

def test_base_already_answers_fires_when_base_knows():
    finding = diagnosis.check_base_already_answers(_results(DictMethod("base", RIGHT)))
    assert finding and finding.code == "base_already_answers" and "100%" in finding.message


def test_base_already_answers_quiet_when_base_does_not_know():
    assert diagnosis.check_base_already_answers(_results(DictMethod("base", {"q1": "38 days"}))) is None


# --- too little data ---------------------------------------------------------------------

def test_too_little_data_fires_for_few_examples_and_bad_adapter(tmp_path):
    run = _run(tmp_path, summary={"train_examples": 40, "model_parameters": 135_000_000})
    finding = diagnosis.check_too_little_data(_results(DictMethod("lora", {})), run)
    assert finding and "40 examples" in finding.message and "135M" in finding.message
    assert finding.signal["recommended"] == 200


@pytest.mark.parametrize(
    ("summary", "answers"),
    [
        ({"train_examples": 600, "model_parameters": 135_000_000}, {}),  # enough data
        ({"train_examples": 40, "model_parameters": 135_000_000}, RIGHT),  # adapter does fine
        ({"model_parameters": 135_000_000}, {}),  # not measured: say nothing
    ],
)
def test_too_little_data_quiet(tmp_path, summary, answers):
    run = _run(tmp_path, summary=summary)
    assert diagnosis.check_too_little_data(_results(DictMethod("lora", answers)), run) is None


# --- asked about facts it never trained on ----------------------------------------------------

def _run_on(tmp_path: Path, rows: list[dict]) -> RunRecord:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return RunRecord(config=RunConfig(data=str(data)), run_dir=tmp_path, train_examples=len(rows),
                     model_parameters=135_000_000)


OTHER_FACTS = [{"instruction": "Where is the office?", "output": "In Springfield."},
               {"instruction": "Who founded the company?", "output": "Ada Byron founded it."}]


def test_asked_unseen_facts_fires_and_silences_too_little_data(tmp_path):
    """Quickstart's held-out facts, or questions on other documents: more rows would not help."""
    run = _run_on(tmp_path, OTHER_FACTS)
    results = _results(DictMethod("lora", {}))
    finding = diagnosis.check_asked_unseen_facts(results, run)
    assert finding and finding.signal == {"unseen": 4, "answerable": 4, "method": "lora"}
    assert "4 of the 4 answerable questions" in finding.message and "train.jsonl" in finding.message
    assert diagnosis.check_too_little_data(results, run) is None
    assert "asked_unseen_facts" in _codes(results, run)


def test_asked_unseen_facts_quiet_when_the_rows_teach_the_facts(tmp_path):
    taught = [{"instruction": "How long is the refund window?", "output": "38 days."},
              {"instruction": "Who leads the board of directors?", "output": "Oskar Lindqvist does."},
              {"instruction": "What is the mascot called?", "output": "Pip."},  # same question
              *OTHER_FACTS]
    run = _run_on(tmp_path, taught)
    results = _results(DictMethod("lora", {}))
    assert diagnosis.unseen_questions(results, run) == (1, 4)  # only the sensors are untaught
    assert diagnosis.check_asked_unseen_facts(results, run) is None
    assert diagnosis.check_too_little_data(results, run) is not None  # 5 rows: that is the cause
    gone = RunRecord(config=RunConfig(data=str(tmp_path / "moved.jsonl")), run_dir=tmp_path)
    assert diagnosis.unseen_questions(results, gone) is None  # the data moved: say nothing


# --- overfitting ---------------------------------------------------------------------------

def _curve(eval_losses, train_losses):
    rows = []
    for index, (train, evaluated) in enumerate(zip(train_losses, eval_losses, strict=True)):
        row = {"step": (index + 1) * 10, "loss": train}
        if evaluated is not None:
            row["eval_loss"] = evaluated
        rows.append(row)
    return rows


def test_overfitting_fires_when_eval_rises_and_train_falls(tmp_path):
    run = _run(tmp_path, metrics=_curve([2.0, 1.5, 1.4, 1.6, 1.9], [2.0, 1.4, 1.0, 0.6, 0.2]))
    finding = diagnosis.check_overfitting(_results(DictMethod("lora", {})), run)
    assert finding and finding.signal["best_step"] == 30 and finding.signal["last_step"] == 50
    assert "fewer epochs" in finding.message


@pytest.mark.parametrize(
    ("evals", "trains"),
    [
        ([2.0, 1.5, 1.4, 1.3, 1.2], [2.0, 1.4, 1.0, 0.6, 0.2]),  # eval keeps falling
        ([2.0, 1.5, 1.4, 1.6, 1.9], [0.5, 0.6, 0.8, 1.0, 1.2]),  # train rising too: not overfitting
        ([2.0, 1.5, 1.41, 1.40, 1.42], [2.0, 1.4, 1.0, 0.6, 0.2]),  # noise within 5%
        ([None, None, None, None, 1.0], [2.0, 1.4, 1.0, 0.6, 0.2]),  # one eval point only
    ],
)
def test_overfitting_quiet(tmp_path, evals, trains):
    run = _run(tmp_path, metrics=_curve(evals, trains))
    assert diagnosis.check_overfitting(_results(DictMethod("lora", {})), run) is None


# --- labels masked / template mismatch -------------------------------------------------------

def test_labels_masked_fires_and_stays_quiet(tmp_path):
    results = _results(DictMethod("lora", {}))
    masked = _run(tmp_path, summary={"supervised_token_fraction": 0.01, "unlabelled_examples": 40,
                                     "train_examples": 50})
    finding = diagnosis.check_labels_masked(results, masked)
    assert finding and "40 of the 50 training rows carried no label" in finding.message
    healthy = _run(tmp_path, summary={"supervised_token_fraction": 0.35, "unlabelled_examples": 0,
                                      "train_examples": 50})
    assert diagnosis.check_labels_masked(results, healthy) is None
    assert diagnosis.check_labels_masked(results, None) is None


def test_labels_masked_quiet_for_short_answers_after_long_passages(tmp_path):
    """RAFT rows: a few answer tokens after hundreds of passage tokens is the mask working."""
    results = _results(DictMethod("lora", {}))
    raft = _run(tmp_path, summary={"supervised_token_fraction": 0.012, "unlabelled_examples": 0,
                                   "train_examples": 42})
    assert diagnosis.check_labels_masked(results, raft) is None


def test_labels_masked_reads_old_records_by_token_share(tmp_path):
    results = _results(DictMethod("lora", {}))
    old = _run(tmp_path, summary={"supervised_token_fraction": 0.01})
    finding = diagnosis.check_labels_masked(results, old)
    assert finding and "1.0%" in finding.message


def test_template_mismatch_fires_and_stays_quiet(tmp_path):
    chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    other = "{% for m in messages %}### {{ m.role }}: {{ m.content }}\n{% endfor %}"
    run = _run(tmp_path, template=chatml)
    mismatched = _results(DictMethod("lora", {}, facts={"inference_chat_template": other}))
    finding = diagnosis.check_template_mismatch(mismatched, run)
    assert finding and finding.signal["method"] == "lora"
    # the same template, differing only in whitespace, is no mismatch
    same = _results(DictMethod("lora", {}, facts={"inference_chat_template": chatml + "\n  "}))
    assert diagnosis.check_template_mismatch(same, run) is None


# --- retrieval misses ------------------------------------------------------------------------

def _rag(answers, passages):
    return DictMethod("rag", answers, passages=passages)


def test_retrieval_miss_fires_when_wrong_answers_lacked_the_passage():
    passages = {qid: [("docs/other.md", "Nothing useful here.")] for qid in RIGHT}
    passages["q1"] = [("docs/refund-policy.md", "Return within 38 days.")]
    finding = diagnosis.check_retrieval_miss(_results(_rag({"q1": "38 days"}, passages)))
    assert finding and finding.signal["context_recall"] == 0.25 and finding.signal["missed"] == 3
    assert "retrieval, not generation" in finding.message


def test_retrieval_miss_quiet_when_retrieval_found_the_answers():
    passages = {qid: [("docs/x.md", f"The answer is {text}.")] for qid, text in RIGHT.items()}
    # generation fails (wrong answers) but the passages held the answer: not a retrieval problem
    generation_failed = _results(_rag({}, passages))
    assert diagnosis.check_retrieval_miss(generation_failed) is None
    finding = diagnosis.check_generation_miss(generation_failed)
    assert finding and finding.signal == {"method": "rag", "found": 4, "found_but_wrong": 4}
    # no citations at all: nothing measured, nothing said
    assert diagnosis.check_retrieval_miss(_results(DictMethod("rag", {}))) is None
    assert diagnosis.check_generation_miss(_results(DictMethod("rag", {}))) is None


def test_generation_miss_quiet_when_retrieved_answers_are_used():
    passages = {qid: [("docs/x.md", f"The answer is {text}.")] for qid, text in RIGHT.items()}
    assert diagnosis.check_generation_miss(_results(_rag(RIGHT, passages))) is None


# --- CAG does not fit --------------------------------------------------------------------------

def test_cag_does_not_fit_fires_and_stays_quiet():
    too_big = SkippedMethod("cag", "the knowledge is 9,100 tokens ...", DOES_NOT_FIT,
                            {"knowledge_tokens": 9100, "context_window": 8192})
    finding = diagnosis.check_cag_does_not_fit(_results(DictMethod("base", {}), skipped=[too_big]))
    assert finding and finding.signal["knowledge_tokens"] == 9100 and "RAG" in finding.message
    # the context check's own reason ends in a sentence and its advice: not repeated, no ".."
    advised = SkippedMethod("cag", "The knowledge is 38,144 tokens, more than the 8,192-token "
                            "context window. Use RAG instead, a model with a longer context, or "
                            "less knowledge.", DOES_NOT_FIT, {})
    message = diagnosis.check_cag_does_not_fit(
        _results(DictMethod("base", {}), skipped=[advised])).message
    assert message == f"cag could not run: {advised.reason}"
    other_skip = SkippedMethod("cag", "no knowledge files given", MISSING)
    assert diagnosis.check_cag_does_not_fit(_results(DictMethod("base", {}), skipped=[other_skip])) is None


def test_healthy_run_has_no_findings(tmp_path):
    passages = {qid: [("docs/x.md", f"The answer is {text}.")] for qid, text in RIGHT.items()}
    results = _results(DictMethod("base", {}), _rag(RIGHT, passages), DictMethod("lora", RIGHT))
    run = _run(tmp_path, metrics=_curve([2.0, 1.5, 1.2], [2.0, 1.5, 1.1]),
               summary={"train_examples": 400, "model_parameters": 135_000_000,
                        "supervised_token_fraction": 0.3})
    assert _codes(results, run) == []


# --- reading a run folder -----------------------------------------------------------------------

def test_load_run_reads_the_record_train_writes(tmp_path):
    record = RunRecord(config=RunConfig(model="smollm2", lora_r=16), train_examples=204, training_s=61.5,
                       model_parameters=135_000_000, chat_template="{{ messages }}")
    record.write(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _curve([None, 1.5], [2.0, 1.0])) + "\n", encoding="utf-8"
    )
    run = load_run(tmp_path)
    assert run.curve() == [{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0, "eval_loss": 1.5}]
    assert run.train_examples == 204 and run.training_s == 61.5 and run.model_parameters == 135_000_000
    assert run.config.lora_r == 16 and run.chat_template == "{{ messages }}"


def test_load_run_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not an infuse run"):
        load_run(tmp_path)
    RunRecord(config=RunConfig()).write(tmp_path)
    with pytest.raises(DataError, match="no metrics.jsonl"):
        load_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2}\n{"loss": 1}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl, line 2: each line needs an integer 'step'"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(DataError, match=r"run.json: not valid JSON"):
        load_run(tmp_path)


# --- a small model that answers poorly -------------------------------------------------------

def test_model_too_small_fires_on_poor_answers_from_the_packaged_model():
    results = _results(DictMethod("rag", {"q1": "38 days"}))
    results.meta.update(model="smollm2", base_url=None)
    finding = diagnosis.check_model_too_small(results)
    assert finding and finding.code == "model_too_small" and "smollm2" in finding.title
    assert "--base-url http://127.0.0.1:8080/v1" in finding.message and "25%" in finding.message
    assert "model_too_small" in _codes(results)


def test_model_too_small_quiet_on_good_answers_or_a_served_model():
    good = _results(DictMethod("rag", RIGHT))
    good.meta.update(model="smollm2")
    assert diagnosis.check_model_too_small(good) is None
    served = _results(DictMethod("rag", {"q1": "38 days"}))
    served.meta.update(model="smollm2", base_url="http://127.0.0.1:8080/v1")
    assert diagnosis.check_model_too_small(served) is None
