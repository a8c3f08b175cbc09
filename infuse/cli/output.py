"""How the CLI prints: rich for people, one JSON object for machines (`--json`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(payload: dict[str, Any]) -> None:
    """Print one JSON object on stdout (what `--json` promises)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_eval_report(results: Any, target: Console | None = None) -> None:
    """The eval table, the recommendation, skipped methods and the diagnosis, for people."""
    from infuse.eval.report import render_table

    if target is None:
        target = console if console.is_terminal else Console(width=180)
    target.print(render_table(results))
    recommendation = results.recommendation.get("text")
    if recommendation:
        target.print(f"[bold green]Recommendation:[/] {recommendation}", highlight=False)
    for skip in results.skipped:
        target.print(f"[yellow]skipped[/] {skip.name}: {skip.reason}", highlight=False)
    if results.findings:
        target.print("\n[bold]Diagnosis[/]")
        for finding in results.findings:
            target.print(f"[bold]- {finding['title']}.[/] {finding['message']}", highlight=False)
