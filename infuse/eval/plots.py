"""The report's figures, drawn with matplotlib (Agg) and returned as inline SVG text."""

from __future__ import annotations

import io
from typing import Any

from infuse.eval.results import EvalResults

_COLORS = {"accuracy": "#2b6cb0", "f1": "#38a169", "exact_match": "#dd6b20"}


def _svg(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: it sits inside HTML


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, smaller
    return plt


def score_plot(results: EvalResults) -> str:
    """Grouped bars: accuracy, token F1 and exact match per method."""
    plt = _pyplot()
    names = [m.name for m in results.methods]
    figure, axis = plt.subplots(figsize=(7, 3.2))
    width = 0.26
    for offset, key in enumerate(("accuracy", "f1", "exact_match")):
        values = [getattr(m, key) for m in results.methods]
        xs = [i + (offset - 1) * width for i in range(len(names))]
        axis.bar(xs, values, width, label=key.replace("_", " "), color=_COLORS[key])
    axis.set_xticks(range(len(names)), names)
    axis.set_ylim(0, 1)
    axis.set_ylabel("score")
    axis.set_title("Score per method")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(figure)


def latency_plot(results: EvalResults) -> str:
    """Bars: mean time to first token and mean total time per answer, per method."""
    plt = _pyplot()
    names = [m.name for m in results.methods]
    figure, axis = plt.subplots(figsize=(7, 3.2))
    totals = [m.total_mean_s for m in results.methods]
    ttfts = [m.ttft_mean_s or 0.0 for m in results.methods]
    axis.bar([i - 0.2 for i in range(len(names))], ttfts, 0.4, label="time to first token", color="#805ad5")
    axis.bar([i + 0.2 for i in range(len(names))], totals, 0.4, label="total", color="#3182ce")
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("seconds per answer (mean)")
    axis.set_title("Latency per method")
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(figure)


def wins_plot(results: EvalResults) -> str:
    """A grid of questions x methods: right (green), wrong (red), declined (grey)."""
    plt = _pyplot()
    from matplotlib.colors import ListedColormap

    names = [m.name for m in results.methods]
    ids = [q.id for q in results.questions]
    cell = {(r.question_id, r.method): r for r in results.per_question}
    grid = []
    for method in names:
        row = []
        for qid in ids:
            result = cell.get((qid, method))
            row.append(0 if result is None or result.no_answer else (2 if result.correct else 1))
        grid.append(row)
    figure, axis = plt.subplots(figsize=(max(6, 0.22 * len(ids) + 1.5), 0.45 * len(names) + 1.2))
    axis.imshow(grid, cmap=ListedColormap(["#cbd5e0", "#e53e3e", "#38a169"]), vmin=0, vmax=2, aspect="auto")
    axis.set_yticks(range(len(names)), names)
    axis.set_xticks(range(len(ids)), ids, rotation=90, fontsize=7)
    axis.set_title("Per question: right (green), wrong (red), no answer (grey)")
    return _svg(figure)


def loss_plot(curve: list[dict[str, Any]]) -> str | None:
    """Train and eval loss against step; None when the curve is empty."""
    train = [(p["step"], p["loss"]) for p in curve if "loss" in p]
    evals = [(p["step"], p["eval_loss"]) for p in curve if "eval_loss" in p]
    if not train and not evals:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.2))
    if train:
        axis.plot(*zip(*train, strict=True), label="train loss", color="#3182ce")
    if evals:
        axis.plot(*zip(*evals, strict=True), label="eval loss", color="#e53e3e", marker="o")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title("Training and eval loss")
    axis.legend(fontsize=8)
    return _svg(figure)
