"""The runner and the report on methods that answer from fixed dicts (real timing, real files)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from eval_fakes import QUESTIONS, DictMethod
from rich.console import Console

from infuse.answer import Answer
from infuse.errors import BackendError
from infuse.eval.methods import DOES_NOT_FIT, FunctionMethod, SkippedMethod
from infuse.eval.report import format_cell, render_html, render_table, shown_columns, write_report
from infuse.eval.results import EvalResults
from infuse.eval.runner import run_eval

RIGHT = {"q1": "The refund window is 38 days.", "q2": "Oskar Lindqvist chairs it.",
         "q3": "Pip.", "q4": "64"}


def _methods():
    base = DictMethod("base", {"q3": "Pip"}, delay_s=0.002)
    rag = DictMethod(
        "rag", {"q1": RIGHT["q1"], "q2": RIGHT["q2"], "q3": "It is called Spike."},
        delay_s=0.02, ttft_s=0.01,
        passages={
            "q1": [("kb/docs/refund-policy.md", "New hardware ... within 38 days of delivery.")],
            "q2": [("kb/docs/refund-policy.md", "The board is chaired by Oskar Lindqvist.")],
            "q3": [("kb/docs/products.md", "The Sprout S2 is moss green.")],
            "q4": [("kb/docs/products.md", "The Canopy Hub is a gateway.")],
        },
    )
    cag = DictMethod("cag", RIGHT, delay_s=0.01)
    lora = DictMethod("lora", {"q1": "38 days", "q4": "It connects 60 sensors."},
                      facts={"training_s": 123.5})
    return [base, rag, cag, lora]


@pytest.fixture(scope="module")
def results() -> EvalResults:
    skipped = [SkippedMethod("lora+rag", "no RAG function given")]
    return run_eval(QUESTIONS, _methods(), skipped=skipped)


def test_scores_per_method(results):
    base, rag, cag, lora = (results.method(n) for n in ("base", "rag", "cag", "lora"))
    assert (base.accuracy, base.no_answer_rate) == (0.25, 0.75)
    assert rag.accuracy == 0.5 and rag.no_answer_rate == 0.25
    assert cag.accuracy == 1.0 and cag.exact_match == 0.5  # "Pip." and "64" are exact
    assert lora.accuracy == 0.25 and lora.exact_match == 0.25
    # answer in context: the passages held the answer for q1, q2 only; sources matched q1, q2
    assert rag.context_recall == 0.5 and rag.source_recall == 0.75
    assert cag.context_recall is None  # no citations: nothing to measure
    assert lora.training_s == 123.5 and cag.training_s is None


def test_latency_is_measured_not_copied(results):
    rag, base = results.method("rag"), results.method("base")
    assert rag.total_mean_s >= 0.02 > base.total_mean_s
    assert rag.ttft_mean_s == 0.01 and base.ttft_mean_s is None
    assert rag.setup_s is not None and rag.setup_s >= 0


def test_wins_and_losses_against_base(results):
    assert results.reference_method == "base"
    cag, rag, lora = results.method("cag"), results.method("rag"), results.method("lora")
    assert (cag.wins, cag.losses) == (3, 0)
    assert (rag.wins, rag.losses) == (2, 1)  # right on q1, q2; wrong on q3 where base was right
    assert (lora.wins, lora.losses) == (1, 1)


def test_setup_failure_and_question_errors_are_recorded():
    class Broken(DictMethod):
        def setup(self):
            raise RuntimeError("weights missing")

    class Flaky(DictMethod):
        def answer(self, question):
            if question == QUESTIONS[1].question:
                raise BackendError("server at http://127.0.0.1:9 refused the connection")
            return super().answer(question)

    results = run_eval(QUESTIONS, [Broken("broken", {}), Flaky("flaky", RIGHT)])
    assert [m.name for m in results.methods] == ["flaky"]
    assert results.skipped[0].name == "broken" and "weights missing" in results.skipped[0].reason
    flaky = results.method("flaky")
    assert flaky.errors == 1 and flaky.accuracy == 0.75
    failed = next(r for r in results.results_for("flaky") if r.error)
    assert failed.question_id == "q2" and "refused" in failed.error


class _SummaryCells(HTMLParser):
    """Collects the cells of the table inside <div id="summary">."""

    def __init__(self):
        super().__init__()
        self.inside = False
        self.rows: list[list[str]] = []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "div" and ("id", "summary") in attrs:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "div":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_report_files_are_complete_and_consistent(results, tmp_path):
    results.training_curve = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}]
    paths = write_report(results, tmp_path / "out")
    html = paths["html"].read_text(encoding="utf-8")
    payload = json.loads(paths["json"].read_text(encoding="utf-8"))

    # every method and the skip are in the HTML; four inline SVG plots; nothing fetched from outside
    for name in ("base", "rag", "cag", "lora", "lora+rag"):
        assert f">{name}<" in html
    for plot in ("score", "latency", "wins", "loss"):
        assert f'<figure id="plot-{plot}"><svg' in html
    assert "<img" not in html and "<script" not in html and "<link" not in html

    # JSON round-trips and holds the same numbers the table and the HTML show
    again = EvalResults.from_dict(payload)
    keys = shown_columns(again)
    assert "judge_mean" not in keys and "context_recall" in keys and "training_s" in keys
    expected = [[format_cell(m, key) for key in keys] for m in payload["methods"]]

    parser = _SummaryCells()
    parser.feed(html)
    assert parser.rows[1:] == expected

    console = Console(record=True, width=200)
    console.print(render_table(again))
    text_rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in console.export_text().splitlines() if line.startswith("│")
    ]
    assert text_rows == expected
    assert expected[1][keys.index("accuracy")] == "50.0%"  # rag, checked by hand


def test_html_escapes_answers(tmp_path):
    method = DictMethod("base", {"q1": "<script>alert(1)</script> 38 days"})
    results = run_eval(QUESTIONS[:1], [method])
    html = render_html(results)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_report_with_cag_skipped_for_size(tmp_path):
    skip = SkippedMethod("cag", "the knowledge is 9,000 tokens", DOES_NOT_FIT,
                         {"knowledge_tokens": 9000, "context_window": 8192})
    results = run_eval(QUESTIONS, _methods()[:1], skipped=[skip])
    html = render_html(results)
    assert "cag" in html and "9,000 tokens" in html


def test_judge_scores_reach_summary_and_table():
    from infuse.llm.base import Generation

    class Judge:  # stands in for a hosted judge API
        name = "judge"

        def generate(self, messages, **_options):
            return Generation(text="Score: 5" if "38 days" in messages[-1]["content"].split(
                "Candidate answer:")[1] else "Score: 1")

    results = run_eval(QUESTIONS, [DictMethod("cag", RIGHT)], judge=Judge())
    assert [r.judge_score for r in results.per_question] == [5, 1, 1, 1]
    assert results.method("cag").judge_mean == 2.0
    assert "judge_mean" in shown_columns(results)


def test_the_report_names_the_model_and_its_server_at_the_top():
    """A newcomer reading the report learns which model answered before reading any number
    (the diagnosis's advice, a stronger model, only makes sense with it named)."""
    results = run_eval(QUESTIONS[:1], _methods()[:2],
                       meta={"model": "qwen3:4b", "base_url": "http://127.0.0.1:8080/v1"})
    html = render_html(results)
    about = html[html.index("<p id='about'>"):]
    assert about.startswith("<p id='about'>1 question, 2 methods, model <b>qwen3:4b served at "
                            "http://127.0.0.1:8080/v1</b>")
    console = Console(record=True, width=200)
    console.print(render_table(run_eval(QUESTIONS, _methods()[:1], meta={"model": "smollm2"})))
    assert "infuse eval: 4 questions, model smollm2" in console.export_text()


def test_a_function_is_a_method_prepared_once_and_named_in_its_answers():
    prepared: list[str] = []
    answers = {q.question: RIGHT.get(q.id, "I don't know.") for q in QUESTIONS}

    def my_pipeline(question: str) -> Answer:
        return Answer(text=answers[question], method="mine")

    method = FunctionMethod("my-pipeline", my_pipeline, prepare=lambda: prepared.append("index"))
    results = run_eval(QUESTIONS, [method])
    assert prepared == ["index"]  # once, for four questions
    assert results.method("my-pipeline").accuracy == 1.0
    assert {r.method for r in results.results_for("my-pipeline")} == {"my-pipeline"}
    wrong = FunctionMethod("broken", lambda question: "just text")
    with pytest.raises(TypeError, match="Method 'broken' returned str, not an Answer"):
        wrong.answer(QUESTIONS[0].question)
