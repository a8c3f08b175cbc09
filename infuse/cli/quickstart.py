"""`infuse quickstart [DIR]`: the README's main command."""

from __future__ import annotations

from pathlib import Path

import click

from infuse.cli.output import console, print_json


@click.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("infuse-quickstart"),
    show_default=True,
    help="Where the knowledge base, run and report go.",
)
@click.option(
    "--model",
    default="smollm2",
    show_default=True,
    help="Base model (packaged name or local folder).",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="LoRA epochs (default on a CPU: 1 over the augmented data, 3 without; 8 on a GPU).",
)
@click.option(
    "--no-augment",
    is_flag=True,
    help="Train on the question/answer pairs alone (no rewordings, restated passages, RAFT rows).",
)
@click.option("--max-new-tokens", type=int, default=32, show_default=True)
@click.option(
    "--all-questions", is_flag=True, help="Every question, not the CPU subset (automatic on a GPU)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
def quickstart(
    folder: Path | None,
    output: Path,
    model: str,
    epochs: int | None,
    max_new_tokens: int,
    all_questions: bool,
    no_augment: bool,
    as_json: bool,
) -> None:
    """Knowledge base, RAG, CAG, a LoRA fine-tune and one report comparing them.

    With no FOLDER it runs on the sample pack shipped with infuse; with a FOLDER of your
    documents (plus optional questions.jsonl / train.jsonl) it runs on yours.
    """
    from infuse.cli.output import print_eval_report
    from infuse.quickstart import plan_quickstart, run_quickstart

    plan = plan_quickstart(
        folder,
        output=output,
        model=model,
        epochs=epochs,
        max_new_tokens=max_new_tokens,
        all_questions=all_questions,
        augment=not no_augment,
    )
    say = (
        (lambda text: None) if as_json else (lambda text: console.print(f"[bold cyan]>[/] {text}"))
    )
    results = run_quickstart(plan, say=say, progress=not as_json)
    if as_json:
        print_json(results.to_dict())
        return
    print_eval_report(results)
    steps = results.meta["quickstart"]
    console.print(
        f"\nknowledge base {steps['knowledge_base_s']:.0f} s, fine-tune {steps['training_s']:.0f} s, "
        f"eval {steps['eval_s']:.0f} s"
    )
    console.print(f"Report: {results.meta['files']['html']}")
