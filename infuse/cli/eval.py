"""`infuse eval`: compare methods on a question set; `infuse eval retrieval` compares retrievers."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from infuse.errors import ConfigError
from infuse.models import DEFAULT_MODEL


class EvalGroup(click.Group):
    """`eval` runs the comparison itself; `eval retrieval` is attached when its module exists."""

    _lazy = {"retrieval": ("infuse.cli.eval_retrieval", "retrieval")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module_name, attribute = self._lazy[name]
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as error:
                if error.name == module_name:
                    return None
                raise
            return getattr(module, attribute, None)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        import importlib.util

        if importlib.util.find_spec(self._lazy["retrieval"][0]) is not None:
            with formatter.section("Commands"):
                formatter.write_dl([("retrieval", "Compare BM25, dense, hybrid and rerank retrieval.")])


def parse_methods(text: str) -> list[str]:
    """'base,rag,cag' -> ['base', 'rag', 'cag'] (order kept, repeats dropped)."""
    from infuse.methods import METHOD_NAMES

    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--methods '{text}': unknown {', '.join(unknown) or 'empty list'}; "
            f"choose from {','.join(METHOD_NAMES)}."
        )
    return names


@click.group("eval", cls=EvalGroup, invoke_without_command=True)
@click.option("--questions", type=click.Path(path_type=Path),
              help="JSONL question set: question, answer (short), optional aliases, source, tags.")
@click.option("--knowledge", multiple=True, type=click.Path(path_type=Path),
              help="Knowledge files or folders (CAG loads them whole). Repeat for more.")
@click.option("--kb", default=None,
              help="Knowledge base for RAG (folder or postgresql:// URL); default: one built "
                   "from --knowledge inside the output folder.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path),
              help="Training run folder: adds the lora and lora+rag methods and loss curves.")
@click.option("--methods", default="base,rag,cag,lora,lora+rag", show_default=True,
              help="Comma-separated methods to compare.")
@click.option("--limit", type=int, default=None, help="Only the first N questions.")
@click.option("--subset", default=None, help="Only questions tagged so (e.g. 'cpu').")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Base model: packaged name, transformers folder or .gguf (served name with --base-url).")
@click.option("--base-url", default=None, help="OpenAI-compatible server for the base model.")
@click.option("--api-key", default=None, envvar="INFUSE_API_KEY", help="Key for --base-url.")
@click.option("--judge-url", default=None, help="OpenAI-compatible endpoint of an LLM judge (1-5 grades).")
@click.option("--judge-model", default=None, help="Model name the judge endpoint serves.")
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--search", default=None,
              help="research method: web search (searxng:URL, brave, tavily, exa; default none).")
@click.option("--output", "output_dir", type=click.Path(path_type=Path), default=Path("eval-report"),
              show_default=True, help="Folder for results.json and report.html.")
@click.option("--prefer", type=click.Choice(["accuracy", "fast"]), default="accuracy", show_default=True,
              help="What the recommendation optimises: accuracy, or the fastest method not "
                   "distinguishable from the most accurate.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.pass_context
def eval_group(ctx: click.Context, questions: Path | None, knowledge: tuple[Path, ...],
               kb: str | None, run_dir: Path | None, methods: str, limit: int | None, subset: str | None,
               model: str, base_url: str | None, api_key: str | None, judge_url: str | None,
               judge_model: str | None, max_new_tokens: int, search: str | None,
               output_dir: Path, prefer: str, as_json: bool) -> None:
    """Compare the base model, RAG, CAG, the LoRA adapter and adapter+RAG on one question set."""
    if ctx.invoked_subcommand is not None:
        return
    if questions is None:
        raise click.UsageError("Give --questions QA.jsonl (or a subcommand, e.g. `retrieval`).")
    from infuse.cli.output import print_eval_report, print_json
    from infuse.cli.progress import progress_bar
    from infuse.eval import MethodOptions, evaluate

    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {max_new_tokens}: must be at least 1.")
    options = MethodOptions(  # evaluate() expands folders and builds the default kb (output/kb)
        model=model, base_url=base_url, api_key=api_key, knowledge=list(knowledge),
        run_dir=run_dir, max_new_tokens=max_new_tokens, kb=kb, search=search,
    )
    judge = None
    if judge_url:
        from infuse.eval.scoring import load_judge

        judge = load_judge(judge_url, judge_model, api_key)
    with progress_bar("eval", enabled=not as_json) as on_progress:
        results = evaluate(
            questions, methods=parse_methods(methods), options=options, limit=limit, tag=subset,
            judge=judge, output_dir=output_dir, on_progress=on_progress, prefer=prefer,
        )
    if as_json:
        print_json(results.to_dict())
        return
    for item in results.meta.get("skipped_files", []):
        click.echo(f"skipped {item['reason']}", err=True)
    print_eval_report(results)
    click.echo(f"\nReport: {results.meta['files']['html']}\nJSON:   {results.meta['files']['json']}")
    if "profile" in results.meta["files"]:
        click.echo(f"Profile: {results.meta['files']['profile']} (serve it: infuse serve --profile FILE)")
