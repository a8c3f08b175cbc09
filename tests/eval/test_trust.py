"""A verdict users can trust: unanswerable questions, hallucinations, contradicting answers,
paired-bootstrap intervals and the recommendation they support."""

from __future__ import annotations

import json

import pytest

from infuse.answer import Answer
from infuse.errors import DataError
from infuse.eval.diagnosis import diagnose
from infuse.eval.intervals import mean_interval, paired_difference
from infuse.eval.questions import EvalQuestion, load_questions
from infuse.eval.report import render_html, shown_columns
from infuse.eval.results import EvalResults
from infuse.eval.runner import run_eval, score_answer
from infuse.eval.verdict import compare_methods, recommend


class ScriptedMethod:
    """Answers each question id from a dict; 'I don't know.' otherwise."""

    def __init__(self, name, answers, questions):
        self.name, self.answers, self.facts = name, answers, {}
        self._ids = {q.question: q.id for q in questions}

    def answer(self, question: str) -> Answer:
        return Answer(text=self.answers.get(self._ids[question], "I don't know."), method=self.name)


def _questions(count: int, unanswerable: int = 0) -> list[EvalQuestion]:
    items = [EvalQuestion(f"q{i}", f"What is fact number {i}?", f"value{i}") for i in range(count)]
    items += [EvalQuestion(f"u{i}", f"What is the unknown thing {i}?", None)
              for i in range(unanswerable)]
    return items


def test_unanswerable_questions_load_in_both_spellings(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"question": "Who is the CEO?", "answer": "Ada"}\n'
        '{"question": "What is the office cat called?", "answer": null}\n'
        '{"question": "What is the wifi password?", "unanswerable": true}\n'
    )
    questions = load_questions(path)
    assert [q.answerable for q in questions] == [True, False, False]
    assert questions[1].references == [] and questions[1].to_dict()["answer"] is None


@pytest.mark.parametrize(
    "row, error",
    [
        # unanswerable with an answer is refused
        ('{"question": "Q?", "answer": "A", "unanswerable": true}', "line 1.*unanswerable"),
        # a missing answer names the line and the null spelling
        ('{"question": "Q?", "answer": ""}', r'line 1.*"answer": null'),
    ],
)
def test_contradictory_or_empty_answers_are_refused_naming_the_line(tmp_path, row, error):
    path = tmp_path / "qa.jsonl"
    path.write_text(row + "\n")
    with pytest.raises(DataError, match=error):
        load_questions(path)


def test_decline_on_unanswerable_is_right_and_an_invented_answer_is_a_hallucination():
    question = EvalQuestion("u1", "What is the office cat called?", None)
    declined = score_answer(question, Answer("I don't know.", "rag"), total_s=0.1)
    invented = score_answer(question, Answer("The cat is called Tom.", "rag"), total_s=0.1)
    assert declined.correct == 1.0 and not declined.hallucinated
    assert invented.correct == 0.0 and invented.hallucinated


def test_declining_an_answerable_question_is_a_wrong_decline():
    question = EvalQuestion("q1", "How long is the refund window?", "45 days")
    result = score_answer(question, Answer("The knowledge base has no answer.", "rag"), total_s=0.1)
    assert result.correct == 0.0 and result.wrong_decline


def test_a_decline_keeps_its_reason_and_the_withheld_answer_in_results_and_report():
    question = EvalQuestion("q1", "How long is the refund window?", "45 days")
    answer = Answer("The knowledge base has no answer.", "rag", no_answer=True, facts={
        "declined_because": "the answer is not grounded: the number 60 is in no passage",
        "raw_answer": "The refund window is 60 days."})
    result = score_answer(question, answer, total_s=0.1)
    assert result.wrong_decline and result.withheld_answer == "The refund window is 60 days."
    assert "the number 60 is in no passage" in result.declined_because
    results = EvalResults(questions=[question], methods=[], per_question=[result])
    assert results.to_dict()["per_question"][0]["withheld_answer"] == "The refund window is 60 days."
    answered = score_answer(question, Answer("45 days.", "rag", facts={"raw_answer": "45 days."}), total_s=0)
    assert answered.declined_because is None and answered.withheld_answer is None

    class Grounded(ScriptedMethod):
        def answer(self, question: str) -> Answer:
            return answer

    shown = render_html(run_eval([question], [Grounded("rag", {}, [question])]))
    assert "declined because the answer is not grounded" in shown and "withheld: The refund" in shown


def test_an_answer_with_two_values_is_not_right():
    question = EvalQuestion("q1", "How long is the refund window?", "45 days")
    both = score_answer(question, Answer("It is 45 days, or 30 days for sale items.", "rag"), total_s=0)
    one = score_answer(question, Answer("The refund window is 45 days.", "rag"), total_s=0)
    assert both.contradiction and both.correct == 0.0
    assert not one.contradiction and one.correct == 1.0 and one.short_match == 0.0
    assert score_answer(question, Answer("45 days.", "rag"), total_s=0).short_match == 1.0


def test_rates_in_the_summary_table_json_and_html():
    questions = _questions(4, unanswerable=2)
    rag = ScriptedMethod("rag", {"q0": "value0", "q1": "value1", "u0": "It is Tom."}, questions)
    results = run_eval(questions, [rag])
    summary = results.method("rag")
    assert summary.hallucination_rate == 0.5  # u0 answered, u1 declined
    assert summary.wrong_decline_rate == 0.5  # q2, q3 declined
    assert summary.accuracy == pytest.approx(3 / 6)
    assert {"hallucination_rate", "wrong_decline_rate"} <= set(shown_columns(results))
    payload = json.loads(json.dumps(results.to_dict()))
    assert payload["methods"][0]["hallucination_rate"] == 0.5
    assert "hallucinated" in render_html(results)


def test_hallucination_diagnosis_fires_and_stays_quiet():
    questions = _questions(4, unanswerable=4)
    liar = ScriptedMethod("rag", {f"u{i}": "Surely 42." for i in range(4)}, questions)
    honest = ScriptedMethod("cag", {}, questions)
    fired = run_eval(questions, [liar])
    quiet = run_eval(questions, [honest])
    finding = next(f for f in diagnose(fired) if f.code == "hallucination")
    assert "(`infuse ask --min-similarity`)" in finding.message  # the command that has the flag
    assert "hallucination" not in [f.code for f in diagnose(quiet)]


def test_paired_interval_of_identical_methods_is_zero_and_of_a_clear_winner_excludes_zero():
    same = paired_difference([1, 0, 1, 0], [1, 0, 1, 0])
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero()
    clear = paired_difference([1] * 30, [0] * 25 + [1] * 5)
    assert clear.excludes_zero() and clear.low > 0.6
    spread = mean_interval([1, 0] * 10)
    assert spread.low < 0.5 < spread.high


def test_tied_methods_are_called_indistinguishable():
    questions = _questions(12)
    # Each method gets a different half right: a tie with disagreements on every question.
    first = ScriptedMethod("rag", {f"q{i}": f"value{i}" for i in range(0, 12, 2)}, questions)
    second = ScriptedMethod("cag", {f"q{i}": f"value{i}" for i in range(1, 12, 2)}, questions)
    results = run_eval(questions, [first, second])
    compare_methods(results)
    verdict = recommend(results)
    comparison = results.comparisons[0]
    assert comparison["low"] < 0 < comparison["high"] and not comparison["distinguishable"]
    assert verdict["winner"] is None
    assert verdict["text"].startswith("no method is distinguishable on 12 questions: ")
    assert "; more questions narrow it)" in verdict["text"]
    assert "--all-questions" not in verdict["text"]  # a quickstart flag, wrong in `infuse eval`


def test_points_never_read_minus_zero():
    from infuse.eval.verdict import _points

    assert [_points(v) for v in (-0.0, -0.001, 0.0, 0.126, -0.126)] == ["+0", "+0", "+0", "+13",
                                                                         "-13"]


def test_a_tie_on_one_question_reads_as_a_tie():
    questions = _questions(1)
    both = [ScriptedMethod(name, {"q0": "value0"}, questions) for name in ("rag", "cag")]
    verdict = recommend(run_eval(questions, both))
    assert verdict["text"] == ("no method is distinguishable on 1 question: rag and cag are "
                               "level (interval +0 to +0 points; more questions narrow it)")


def test_a_clear_winner_is_recommended_with_its_interval_and_an_untrained_fallback():
    questions = _questions(40)
    good = ScriptedMethod("lora+rag", {f"q{i}": f"value{i}" for i in range(36)}, questions)
    rag = ScriptedMethod("rag", {f"q{i}": f"value{i}" for i in range(12)}, questions)
    base = ScriptedMethod("base", {}, questions)
    results = run_eval(questions, [base, rag, good])
    verdict = recommend(results)
    assert verdict["winner"] == "lora+rag" and verdict["runner_up"] == "rag"
    assert verdict["low"] > 0
    assert verdict["text"].startswith("use lora+rag: +60 points over rag, interval +")
    assert verdict["text"].endswith("rag if you cannot train") and verdict["fallback"] == "rag"
    assert results.method("lora+rag").accuracy_interval[0] > results.method("rag").accuracy_interval[1]


def test_wrong_declines_diagnosis_tells_withheld_answers_from_declines_before_asking():
    from infuse.eval.diagnosis import check_wrong_declines

    questions = _questions(4)
    withheld = Answer("The knowledge base has no answer.", "rag", no_answer=True, facts={
        "declined_because": "the answer is not grounded: the number 9 is in no passage",
        "raw_answer": "It is 9."})
    early = Answer("The knowledge base has no answer.", "rag", no_answer=True,
                   facts={"declined_because": "the passages do not speak of: widget"})

    class Declining(ScriptedMethod):
        def answer(self, question: str) -> Answer:
            return {"q0": withheld, "q1": early}.get(self._ids[question]) or super().answer(question)

    finding = check_wrong_declines(run_eval(questions, [Declining("rag", {"q2": "value2", "q3": "value3"},
                                                                   questions)]))
    assert finding and "rag 50%" in finding.message and "rag: 1 of its 2" in finding.message
    assert finding.signal["withheld"] == {"rag": 1}
    quiet = ScriptedMethod("rag", {f"q{i}": f"value{i}" for i in range(4)}, questions)
    assert check_wrong_declines(run_eval(questions, [quiet])) is None
