"""`infuse data synth`: documents in, question/answer pairs out (train + held-out split)."""

from __future__ import annotations

from pathlib import Path

import click

from infuse.models import DEFAULT_MODEL


@click.command("synth")
@click.option("--knowledge", "knowledge", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Files or folders to write questions about (text, Markdown, HTML, PDF, DOCX, man "
                   "pages ...). Repeat for more.")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="JSONL file for the training pairs; the held-out split goes beside it "
                   "(QA.jsonl -> QA.heldout.jsonl).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Model writing the pairs: packaged name, folder, .gguf (served name with --base-url).")
@click.option("--base-url", default=None, help="OpenAI-compatible server to write the pairs with.")
@click.option("--api-key", default=None, envvar="INFUSE_API_KEY", help="Key for --base-url.")
@click.option("--per-chunk", type=int, default=3, show_default=True, help="Pairs asked for per chunk.")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Fraction of pairs held out for `infuse eval`.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the held-out split.")
@click.option("--max-pairs", type=int, default=None,
              help="Stop after this many kept pairs (chunks are sampled over every document).")
@click.option("--max-chunks", type=int, default=None,
              help="Ask about at most this many chunks, sampled over every document.")
@click.option("--time-budget", "time_budget", type=float, default=None,
              help="Seconds to spend at most; generation stops before a chunk would pass it.")
@click.option("--augment", is_flag=True,
              help="Also write QA.augmented.jsonl for training: the pairs, rewordings of each, the "
                   "documents' passages restated, RAFT rows (questions over passages with "
                   "distractors) that teach LoRA+RAG to read them, and questions the documents do "
                   "not answer, answered with a decline.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def synth(knowledge: tuple[Path, ...], output: Path, model: str, base_url: str | None,
          api_key: str | None, per_chunk: int, holdout: float, seed: int, max_pairs: int | None,
          max_chunks: int | None, time_budget: float | None, augment: bool, as_json: bool) -> None:
    """Ask a model for question/answer pairs about your documents; keep only grounded ones."""
    from collections import Counter

    from infuse.cli.output import console, err_console, print_json
    from infuse.cli.progress import progress_bar
    from infuse.data.synth import heldout_path, read_documents, synthesize_qa, write_pairs
    from infuse.llm import load_chat_model

    reading = read_documents(knowledge)
    documents = reading.documents
    if not as_json:
        for item in reading.skipped:
            err_console.print(f"[yellow]skipped[/] {item['reason']}", markup=True, highlight=False)
    chat_model = load_chat_model(model, base_url=base_url, api_key=api_key) if base_url else load_chat_model(model)
    with progress_bar("Writing questions", enabled=not as_json) as on_progress:
        result = synthesize_qa(
            documents, chat_model, per_chunk=per_chunk, holdout=holdout, seed=seed,
            max_pairs=max_pairs, max_chunks=max_chunks, time_budget_s=time_budget,
            on_progress=on_progress,
        )
    train_path = write_pairs(result.train, output, id_prefix="syn")
    held_path = write_pairs(result.heldout, heldout_path(output), id_prefix="held")
    augmented_path = None
    if augment:
        from infuse.data.synth import augment_rows, decline_count, pair_rows, write_rows
        from infuse.data.synth import augmented_path as augmented_for

        rows = augment_rows(pair_rows(result.train), documents, seed=seed,
                            declines=decline_count(len(result.train)))
        augmented_path = write_rows(rows, augmented_for(output))
    reasons = Counter(why for _q, _a, why in result.rejected)
    payload = {
        **result.to_dict(),
        "skipped": reading.skipped,
        "rejected_by_reason": dict(reasons),
        "train_file": str(train_path),
        "heldout_file": str(held_path),
        "augmented_file": str(augmented_path) if augmented_path else None,
    }
    if as_json:
        print_json(payload)
        return
    console.print(
        f"{len(documents)} documents, {result.chunks} chunks: kept {len(result.train)} train and "
        f"{len(result.heldout)} held-out pairs, rejected {len(result.rejected)}"
        + (f" ({', '.join(f'{n} {why}' for why, n in reasons.most_common())})" if reasons else "")
    )
    console.print(f"train:    {train_path}\nheld-out: {held_path}  (use with `infuse eval --questions`)")
    if result.stopped or result.chunks_asked < result.chunks:
        why = {"max_pairs": "--max-pairs reached", "time_budget": "--time-budget reached"}.get(
            result.stopped or "", "--max-chunks")
        console.print(f"asked about {result.chunks_asked} of {result.chunks} chunks "
                      f"({result.documents_covered} of {result.documents} documents): {why}")
    if augmented_path:
        console.print(f"augmented: {augmented_path}  (train on it: `infuse train --data`)")
    if not result.train and not result.heldout:
        err_console.print("[yellow]No pair passed the checks: try a larger model (--model/--base-url).[/]")
