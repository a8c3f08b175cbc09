"""The eval report three ways, from the same numbers: a rich table, JSON, and one HTML file.

Table and HTML both render `summary_rows()`, and JSON is `EvalResults.to_dict()`, whose
summary numbers `summary_rows()` formats: the three cannot disagree.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infuse.eval.results import EvalResults, MethodSummary
from infuse.files import write_text_atomic


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _number(value: float | int | None) -> str:
    return "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))


# (summary field, column header, formatter): the one definition of the results table.
COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("name", "method", str),
    ("questions", "n", str),
    ("accuracy", "accuracy", _percent),
    ("f1", "F1", _percent),
    ("accuracy_interval", "95% interval", lambda v: "–" if not v else f"{v[0] * 100:.0f}–{v[1] * 100:.0f}%"),
    ("short_match", "short EM", _percent),
    ("no_answer_rate", "no answer", _percent),
    ("hallucination_rate", "hallucinated", _percent),
    ("wrong_decline_rate", "wrong declines", _percent),
    ("retrieval_recall", "retrieved", _percent),
    ("context_recall", "in context", _percent),
    ("judge_mean", "judge", _number),
    ("ttft_mean_s", "TTFT s", _seconds),
    ("total_mean_s", "total s", _seconds),
    ("setup_s", "setup s", _seconds),
    ("training_s", "train s", _seconds),
    ("wins", "wins", str),
    ("losses", "losses", str),
]
# Shown only when some method has a value (a run without a judge has no judge column).
OPTIONAL_COLUMNS = {
    "context_recall", "judge_mean", "ttft_mean_s", "setup_s", "training_s", "accuracy_interval",
    "hallucination_rate", "wrong_decline_rate", "retrieval_recall", "short_match",
}


def format_cell(summary: MethodSummary | dict[str, Any], key: str) -> str:
    """Format one summary field exactly as the table and the HTML show it."""
    value = summary.get(key) if isinstance(summary, dict) else getattr(summary, key)
    formatter = next(f for k, _h, f in COLUMNS if k == key)
    return formatter(value)


def shown_columns(results: EvalResults) -> list[str]:
    """The summary fields the table shows: all but optional ones no method has a value for."""
    return [
        key for key, _h, _f in COLUMNS
        if key not in OPTIONAL_COLUMNS or any(getattr(m, key) is not None for m in results.methods)
    ]


def summary_rows(results: EvalResults) -> tuple[list[str], list[list[str]]]:
    """The results table as text: headers, then one row per method."""
    keys = shown_columns(results)
    headers = [header for key, header, _f in COLUMNS if key in keys]
    rows = [[format_cell(m, key) for key in keys] for m in results.methods]
    return headers, rows


def render_table(results: EvalResults):
    """A rich Table of the per-method results."""
    from rich.table import Table

    headers, rows = summary_rows(results)
    reference = results.reference_method
    table = Table(title=f"infuse eval: {_count(len(results.questions), 'question')}"
                  + (f", model {_model(results)}" if _model(results) else "")
                  + (f" (wins/losses against {reference})" if reference else ""))
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row in rows:
        table.add_row(*row)
    return table


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _model(results: EvalResults) -> str:
    """The model the methods ran on, and the server that served it (empty when unknown)."""
    model = str(results.meta.get("model") or "")
    base_url = results.meta.get("base_url")
    return f"{model} served at {base_url}" if model and base_url else model


def _table_html(headers: list[str], rows: list[list[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _per_question_html(results: EvalResults) -> str:
    names = [m.name for m in results.methods]
    cell = {(r.question_id, r.method): r for r in results.per_question}
    headers = ["id", "question", "reference", *names]
    rows = []
    for question in results.questions:
        row = [question.id, question.question,
               question.answer if question.answerable else "(unanswerable: decline)"]
        for name in names:
            result = cell.get((question.id, name))
            if result is None:
                row.append("")
                continue
            if not result.answerable:
                mark = "declined, right" if result.correct else "hallucinated"
            else:
                mark = "no answer" if result.no_answer else ("right" if result.correct else "wrong")
            text = f"[{mark}] {result.answer}" + (f" (error: {result.error})" if result.error else "")
            if result.declined_because:
                text += f" (declined because {result.declined_because}"
                text += f"; withheld: {result.withheld_answer})" if result.withheld_answer else ")"
            row.append(text)
        rows.append(row)
    return _table_html(headers, rows, "questions")


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1a202c}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #cbd5e0;padding:.3rem .5rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
table.questions td{text-align:left;max-width:260px}
.verdict{background:#f0fff4;border-left:4px solid #38a169;padding:.5rem 1rem}
.finding{background:#fffaf0;border-left:4px solid #dd6b20;padding:.5rem 1rem;margin:.5rem 0}
.skip{color:#975a16}
figure{margin:1rem 0} svg{max-width:100%;height:auto}
"""


def render_html(results: EvalResults) -> str:
    """A self-contained HTML report: table, diagnosis, skips, inline SVG plots, per-question answers."""
    from infuse.eval import plots

    headers, rows = summary_rows(results)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>infuse eval report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>infuse eval report</h1>",
        f"<p id='about'>{_count(len(results.questions), 'question')}, "
        f"{_count(len(results.methods), 'method')}"
        + (f", model <b>{html.escape(_model(results))}</b>" if _model(results) else "")
        + (f"; wins and losses are counted against <b>{html.escape(results.reference_method)}</b>"
           if results.reference_method else "") + ".</p>",
        '<h2>Results</h2><div id="summary">', _table_html(headers, rows, "summary"), "</div>",
    ]
    if results.recommendation.get("text"):
        parts.append(f"<p class='verdict' id='recommendation'><b>Recommendation:</b> "
                     f"{html.escape(results.recommendation['text'])}</p>")
    if results.comparisons:
        parts.append("<h2>Differences (paired, 95% interval)</h2>")
        parts.append(_table_html(["methods", "difference", "interval", "distinguishable"], [
            [f"{c['first']} − {c['second']}", f"{c['difference'] * 100:+.1f}",
             f"{c['low'] * 100:+.1f} to {c['high'] * 100:+.1f}", "yes" if c["distinguishable"] else "no"]
            for c in results.comparisons
        ], "comparisons"))
    if results.skipped:
        parts.append("<h2>Skipped</h2><ul>")
        parts += [f"<li class='skip'><b>{html.escape(s.name)}</b>: {html.escape(s.reason)}</li>"
                  for s in results.skipped]
        parts.append("</ul>")
    if results.findings:
        parts.append("<h2>Diagnosis</h2>")
        parts += [f"<div class='finding'><b>{html.escape(f['title'])}.</b> {html.escape(f['message'])}</div>"
                  for f in results.findings]
    if results.methods:
        parts.append("<h2>Plots</h2>")
        figures = [("score", plots.score_plot(results)), ("latency", plots.latency_plot(results)),
                   ("wins", plots.wins_plot(results))]
        loss = plots.loss_plot(results.training_curve)
        if loss:
            figures.append(("loss", loss))
        parts += [f'<figure id="plot-{name}">{svg}</figure>' for name, svg in figures]
    parts += ["<h2>Per question</h2>", _per_question_html(results)]
    if results.meta:
        meta = json.dumps(results.meta, indent=2, ensure_ascii=False, default=str)
        parts.append(f"<h2>Run</h2><pre>{html.escape(meta)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(results: EvalResults, output_dir: str | Path) -> dict[str, Path]:
    """Write results.json and report.html into `output_dir` (atomically); return their paths."""
    output_dir = Path(output_dir)
    paths = {"json": output_dir / "results.json", "html": output_dir / "report.html"}
    write_text_atomic(paths["json"], json.dumps(results.to_dict(), indent=2, ensure_ascii=False, default=str))
    write_text_atomic(paths["html"], render_html(results))
    return paths
