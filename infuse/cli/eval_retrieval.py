"""`infuse eval retrieval`: recall@k, MRR and nDCG@10 for BM25, dense, hybrid and hybrid+rerank.

The `eval` group (infuse/cli/eval.py) attaches this command as `retrieval`.
"""

from __future__ import annotations

from pathlib import Path

import click

from infuse.cli.output import console, print_json


@click.command("retrieval")
@click.option(
    "--queries",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="Queries: JSONL (_id/id + text) or TSV (id<TAB>question).",
)
@click.option(
    "--qrels",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="Judgements: BEIR TSV (query-id corpus-id score), TREC qrels or JSONL.",
)
@click.option(
    "--kb",
    "location",
    envvar="INFUSE_KB",
    default=".infuse/kb",
    show_default=True,
    help="Knowledge base folder or postgresql:// URL.",
)
@click.option(
    "--reranker", default=None, help="Local cross-encoder folder (enables hybrid+rerank)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def retrieval(
    queries: Path, qrels: Path, location: str, reranker: str | None, as_json: bool
) -> None:
    """Score retrieval on judged queries, every mode side by side."""
    from rich.table import Table

    from infuse.knowledge.evaluation import evaluate_retrieval
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.knowledge.rerank import Reranker

    with KnowledgeBase(location) as knowledge:
        report = evaluate_retrieval(
            knowledge, queries, qrels, reranker=Reranker(reranker) if reranker else None
        )
    if as_json:
        print_json(report.to_dict())
        return
    table = Table("mode", *report.columns(), title=f"Retrieval on {report.queries} queries")
    for mode, metrics in report.metrics.items():
        if metrics is None:
            table.add_row(mode, *["-"] * len(report.columns()))
        else:
            table.add_row(
                mode,
                *(
                    f"{metrics[column]:.3f}" if column != "ms/query" else f"{metrics[column]:.1f}"
                    for column in report.columns()
                ),
            )
    console.print(table)
    for mode, note in report.notes.items():
        console.print(f"{mode}: {note}")
