"""`infuse quickstart [DIR]`: the README's main command."""

from __future__ import annotations

from pathlib import Path

import click

from infuse.cli.output import console, print_json
from infuse.models import DEFAULT_MODEL


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
    default=DEFAULT_MODEL,
    show_default=True,
    help="Base model: packaged name, local GGUF file or Hugging Face folder; with --base-url "
    "the name the server knows (LoRA then needs a local one).",
)
@click.option("--base-url", default=None,
              help="OpenAI-compatible server to answer with (llama.cpp, Ollama, vLLM), e.g. "
                   "http://127.0.0.1:8080/v1.")
@click.option("--api-key", default=None, envvar="INFUSE_API_KEY", help="Key for --base-url.")
@click.option("--max-pairs", type=int, default=None,
              help="Question generation: stop after this many pairs (default 120 on a CPU).")
@click.option("--question-budget", "question_budget", type=float, default=None,
              help="Question generation: seconds to spend at most (default 360 on a CPU).")
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="LoRA epochs (default on a CPU: 6, 3 with --no-augment; 8 on a GPU).",
)
@click.option(
    "--augment/--no-augment",
    default=None,
    help="Also train on questions the documents do not answer (answered with a decline) and "
         "RAFT rows (questions over retrieved passages); on a GPU also on rewordings of each pair "
         "and restated passages (default: on).",
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
    augment: bool | None,
    as_json: bool,
    base_url: str | None,
    api_key: str | None,
    max_pairs: int | None,
    question_budget: float | None,
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
        base_url=base_url,
        api_key=api_key,
        question_budget_s=question_budget,
        max_pairs=max_pairs,
        augment=augment,
    )
    say = (
        (lambda text: None) if as_json else (lambda text: console.print(f"[bold cyan]>[/] {text}"))
    )
    with StepProgress(enabled=not as_json) as on_progress:
        results = run_quickstart(plan, say=say, on_progress=on_progress)
    if as_json:
        print_json(results.to_dict())
        return
    print_eval_report(results)
    steps = results.meta["quickstart"]
    console.print(
        f"\nknowledge base {steps['knowledge_base_s']:.0f} s, questions {steps['questions_s']:.0f} s, "
        + (f"fine-tune {steps['training_s']:.0f} s" if "training_s" in steps else "no fine-tune")
        + f", eval {steps['eval_s']:.0f} s"
    )
    console.print(f"Report: {results.meta['files']['html']}")


class StepProgress:
    """One `progress_bar` per quickstart step: `on_progress(done, total, step=..., **info)`
    opens the step's bar when the step changes (plain lines when stderr is not a terminal)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.step: str | None = None
        self._bar = None
        self._draw = None

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
        self._bar = self._draw = None

    def __call__(self, done: int, total: int | None = None, *, step: str = "", **info) -> None:
        from infuse.cli.progress import progress_bar

        if step != self.step or self._draw is None:
            self._close()
            self.step = step
            self._bar = progress_bar(step or "working", enabled=self.enabled)
            self._draw = self._bar.__enter__()
        self._draw(done, total, **info)
