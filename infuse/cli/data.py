"""`infuse data ...`: inspect, convert (and synth) instruction datasets."""

from __future__ import annotations

import click

from infuse.cli.options import conversation_options, parse_role_aliases, unescape_prompt
from infuse.cli.output import console, err_console, print_json
from infuse.models import DEFAULT_MODEL


@click.group()
def data() -> None:
    """Inspect, convert and synthesise training data."""


@data.command()
@click.argument("file", type=click.Path())
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model whose tokenizer and chat template measure the data (folder or packaged name).",
)
@click.option(
    "--chat-template", default=None, help="Use a built-in template (e.g. chatml, llama-3.1)."
)
@click.option("--max-seq-len", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option("--samples", "n_samples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Rows shown with the trained part marked.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the token-length histogram PNG (default: FILE's folder, FILE_STEM.lengths.png).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@conversation_options
def inspect(
    file: str,
    model: str,
    chat_template: str | None,
    max_seq_len: int,
    n_samples: int,
    plot: str | None,
    as_json: bool,
    **options,
) -> None:
    """Rows, format, roles, token lengths, duplicates, samples with the trained part marked."""
    from infuse.data.inspection import inspect_file

    report = inspect_file(
        file, model=model, chat_template=chat_template, max_seq_len=max_seq_len,
        n_samples=n_samples, histogram_png=plot, **_conversation_settings(options),
    )
    if as_json:
        print_json(report.to_dict())
        return
    _print_report(report)


def _print_report(report) -> None:
    from rich.table import Table
    from rich.text import Text

    from infuse.data.inspection import terminal_histogram

    console.print(
        f"[bold]{report.path}[/]: {report.rows} rows, detected format "
        f"[cyan]{report.format}[/] (columns: {', '.join(report.columns)})"
    )
    roles = ", ".join(f"{role} {count}" for role, count in sorted(report.roles.items()))
    turns = report.turns_percentiles
    console.print(
        f"roles: {roles}; turns per conversation: p50 {turns['p50']:.0f}, max {turns['max']:.0f}"
    )
    table = Table(title="tokens per conversation (chat template applied)")
    for name in ("min", "p50", "p90", "p99", "max"):
        table.add_column(name, justify="right")
    table.add_row(
        *(f"{report.token_percentiles[name]:.0f}" for name in ("min", "p50", "p90", "p99", "max"))
    )
    console.print(table)
    for label, count, bar in terminal_histogram(report.token_lengths):
        console.print(f"{label:>12} {count:>7} {bar}")
    console.print(
        f"over max_seq_len {report.max_seq_len}: {report.over_max_len} rows; "
        f"trained tokens: {report.trained_token_share:.1%}; duplicates: {report.duplicates}; "
        f"empty or null answers: {report.empty_answers}; very short answers: {report.short_answers}"
    )
    if report.histogram_png:
        console.print(f"histogram: {report.histogram_png}")
    for number, sample in enumerate(report.samples, start=1):
        console.rule(f"sample {number}  ([green]green[/] = trained on, grey = context only)")
        text = Text()
        for segment in sample:
            text.append(segment.text, style="green" if segment.trained else "grey50")
        console.print(text)
    if report.warnings:
        console.rule("warnings")
        for warning in report.warnings:
            console.print(f"[yellow]![/] {warning}")
    else:
        console.print("[green]No problems found.[/]")


@data.command()
@click.argument("source", type=click.Path())
@click.argument("destination", type=click.Path())
@click.option(
    "--to",
    "target",
    type=click.Choice(["sharegpt", "messages", "alpaca", "openai-jsonl"]),
    required=True,
    help="Output format (openai-jsonl: what hosted fine-tuning services take).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@conversation_options
def convert(source: str, destination: str, target: str, as_json: bool, **options) -> None:
    """Convert SOURCE (any supported format) to DESTINATION (.jsonl/.json/.parquet/.csv)."""
    from infuse.data.convert import convert_file

    result = convert_file(source, destination, target=target, **_conversation_settings(options))
    if as_json:
        print_json(result.to_dict())
        return
    for warning in result.warnings:
        err_console.print(f"Warning: {warning}", markup=False, highlight=False)
    console.print(
        f"{source} ({result.detected_format}, {result.source_rows} rows) -> "
        f"{destination} ({target}, {result.rows} rows)", markup=False, highlight=False,
    )


def _conversation_settings(options: dict) -> dict:
    """The conversation options of the command line as keyword arguments of the library."""
    return {
        "merged_prompt": unescape_prompt(options.get("merged_prompt")),
        "output_column": options.get("output_column"),
        "system_prompt": options.get("system_prompt"),
        "conversation_extension": options.get("conversation_extension", 1),
        "random_state": options.get("random_state", 3407),
        "role_aliases": parse_role_aliases(options.get("role_aliases", ())),
    }


def _attach_synth() -> None:
    """`infuse data synth` lives in its own module; attach it when present."""
    try:
        from infuse.cli.data_synth import synth
    except ImportError:
        return
    data.add_command(synth)


_attach_synth()
