"""`infuse train`, `infuse chat`, `infuse generate`, `infuse export`: thin wrappers over infuse.train."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from infuse.cli.options import option_group
from infuse.cli.output import console, err_console, print_json
from infuse.models import DEFAULT_MODEL

# flag name -> RunConfig field; only flags the user actually gave override the TOML/defaults.
_TRAIN_OPTIONS = [
    click.option("--model", help=f"Base model: a local folder, a .gguf file or a packaged name (default {DEFAULT_MODEL})."),
    click.option("--data", help="Dataset file (JSON, JSONL, CSV, Parquet; alpaca, sharegpt or messages)."),
    click.option("--output", help="Run folder to write (adapter, config, template, metrics, checkpoints)."),
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML file of settings; flags win."),
    click.option("--max-steps", type=int, help="Optimizer steps (wins over --epochs)."),
    click.option("--epochs", "num_epochs", type=int, help="Passes over the data (default 1)."),
    click.option("--learning-rate", "--lr", "learning_rate", type=float, help="Peak learning rate (default 2e-4)."),
    click.option("--lr-schedule", type=click.Choice(["linear", "cosine", "constant"]), help="Decay after warm-up."),
    click.option("--warmup-steps", type=int, help="Linear warm-up steps (default 5)."),
    click.option("--weight-decay", type=float, help="AdamW weight decay (default 0)."),
    click.option("--lora-r", type=int, help="LoRA rank (default 16)."),
    click.option("--lora-alpha", type=int, help="LoRA alpha (default: equal to r)."),
    click.option("--lora-dropout", type=float, help="LoRA dropout (default 0)."),
    click.option("--target-modules", help="Comma-separated modules (default: all attention + MLP linears)."),
    click.option("--rslora/--no-rslora", "use_rslora", default=None, help="Rank-stabilised LoRA scaling."),
    click.option("--load-in-4bit/--no-load-in-4bit", default=None, help="QLoRA (CUDA + bitsandbytes only)."),
    click.option("--batch-size", type=int, help="Sequences per micro-batch (default 2)."),
    click.option("--grad-accum", type=int, help="Micro-batches per optimizer step (default 4)."),
    click.option("--max-seq-len", type=int, help="Tokens per sequence; longer ones are cut (default 2048)."),
    click.option("--packing/--no-packing", default=None, help="Padding-free packing of sequences."),
    click.option("--train-on-responses-only/--train-on-everything", "train_on_responses_only", default=None,
                 help="Learn only the assistant turns (default) or every token."),
    click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None,
                 help="Recompute activations to save memory (default on)."),
    click.option("--seed", type=int, help="Seed for data order and initialisation (default 3407)."),
    click.option("--eval-split", type=float, help="Share of rows held out for eval loss (e.g. 0.1)."),
    click.option("--eval-every", type=int, help="Evaluate every N steps."),
    click.option("--save-every", type=int, help="Checkpoint every N steps (default 50)."),
    click.option("--log-every", type=int, help="Log metrics every N steps (default 1)."),
    click.option("--chat-template", help="Chat template name (default: the model's own)."),
    click.option("--merged-prompt", help="Build the prompt from columns: 'Q: {question}[[ ctx: {context}]]'."),
    click.option("--output-column", help="Column holding the answer (with --merged-prompt)."),
    click.option("--system-prompt", help="System turn added to conversations that have none."),
    click.option("--conversation-extension", type=int, help="Merge N random rows into one conversation."),
    click.option("--backend", type=click.Choice(["auto", "hf", "unsloth"]), help="Training engine (default auto)."),
    click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), help="Precision (auto: bf16 on CUDA)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train (default auto)."),
    click.option("--fused-kernels/--no-fused-kernels", default=None, help="Our CUDA kernels (default on)."),
    click.option("--compile-layers/--no-compile-layers", default=None,
                 help="torch.compile each decoder layer on CUDA (default on)."),
    click.option("--distributed", type=click.Choice(["auto", "ddp", "fsdp", "none"]),
                 help="Under torchrun/accelerate launch: DDP, FSDP2, or auto (DDP when the model fits one GPU)."),
]


@click.command()
@option_group(*_TRAIN_OPTIONS)
@click.option("--resume", is_flag=True, help="Continue the run in --output from its newest checkpoint.")
@click.option("--force", is_flag=True, help="Write into a non-empty --output folder that holds no run.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config_file, resume, force, as_json, quiet, **flags):
    """Fine-tune a LoRA adapter on your data."""
    from infuse.cli.options import unescape_prompt
    from infuse.train.loop import train as run_training
    from infuse.train.runs import resolve_run_config

    flags["merged_prompt"] = unescape_prompt(flags.get("merged_prompt"))
    config = resolve_run_config(flags, config_file=config_file, resume=resume)
    with training_progress(enabled=not (quiet or as_json)) as on_progress:
        result = run_training(config, resume=resume, force=force, on_progress=on_progress)
    if result.rank != 0:  # several processes (torchrun): rank 0 speaks for the run
        return
    if as_json:
        print_json(result.to_dict())
        return
    where = f"{result.world_size} x {result.device} ({result.distributed}, " if result.world_size > 1 \
        else f"{result.device} ("
    console.print(f"Trained {result.steps} steps on {where}{result.dtype}, {result.backend}): "
                  f"final loss {result.final_loss:.4f}, {result.tokens_per_s:,.0f} tokens/s.")
    if result.eval_loss is not None:
        console.print(f"Eval loss {result.eval_loss:.4f}.")
    console.print(f"Run folder: {result.run_dir} (adapter, run.json, config.toml, chat_template.jinja, "
                  "metrics.jsonl, loss.png)")


@contextmanager
def training_progress(*, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """The `on_progress` of a run: the shared CLI bar (with the latest loss) and warnings on stderr.

    Warnings always show, also under --quiet and --json.
    """
    from rich.markup import escape

    from infuse.cli.progress import progress_bar

    with progress_bar("train", enabled=enabled) as draw:
        def on_progress(done: int, total: int, *, loss: float | None = None, warning: str | None = None,
                        **_info: Any) -> None:
            if warning:
                err_console.print(f"[yellow]Warning:[/yellow] {escape(warning)}", highlight=False)
                return
            draw(done, total, **({"name": f"loss {loss:.4f}"} if loss is not None else {}))

        yield on_progress


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("prompt")
@click.option("--system", help="System message.")
@click.option("--max-new-tokens", type=int, default=128, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--chat-template", help="Refused unless it matches the template the run trained with.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
def generate(run_dir, prompt, system, max_new_tokens, temperature, chat_template, as_json):
    """One answer from a base model plus a trained adapter."""
    from infuse.train.runs import generate_from_run

    result = generate_from_run(run_dir, prompt, system=system, max_new_tokens=max_new_tokens,
                               temperature=temperature, chat_template=chat_template)
    if as_json:
        print_json({"text": result.text, "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens, "total_s": result.total_s})
    else:
        console.print(result.text, markup=False, highlight=False)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--system", help="System message.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--chat-template", help="Refused unless it matches the template the run trained with.")
def chat(run_dir, system, max_new_tokens, temperature, chat_template):
    """Chat with a base model plus a trained adapter (empty line, /exit or Ctrl-D quits)."""
    from infuse.train.runs import load_run_model

    chat_model = load_run_model(run_dir, chat_template=chat_template)
    messages = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = click.prompt("you", default="", show_default=False)
        except (EOFError, click.exceptions.Abort):
            break
        if line.strip() in ("", "/exit", "/quit", "/bye"):
            break
        messages.append({"role": "user", "content": line})
        answer = chat_model.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature,
                                     on_token=lambda piece: click.echo(piece, nl=False))
        click.echo()
        messages.append({"role": "assistant", "content": answer.text})


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "export_format", type=click.Choice(["adapter", "merged", "gguf"]),
              default="adapter", show_default=True)
@click.option("--output", required=True, type=click.Path(file_okay=False), help="New folder to write.")
@click.option("--quant", type=click.Choice(["f16", "q8_0", "q4_k_m"]), default="f16", show_default=True,
              help="GGUF weight type.")
@click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp32"]), default="bf16", show_default=True,
              help="Merged weight type.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def export(run_dir, export_format, output, quant, dtype, as_json):
    """Export a run as adapter, merged weights or GGUF (+ Ollama Modelfile)."""
    from infuse.train.export import export_run

    result = export_run(run_dir, output, format=export_format, quant=quant, dtype=dtype)
    if as_json:
        print_json({"format": result.format, "path": str(result.path), "files": result.files,
                    "warnings": result.warnings})
        return
    for warning in result.warnings:
        err_console.print(f"[yellow]Warning:[/yellow] {warning}")
    console.print(f"Exported {result.format} to {result.path}: {', '.join(result.files)}")
