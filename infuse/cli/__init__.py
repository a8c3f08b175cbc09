"""The `infuse` command. Thin: parses flags and calls the Python API.

Subcommands live in one module each and are imported only when invoked, so
`infuse --help` never imports torch or transformers.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from infuse import __version__
from infuse.errors import InfuseError

# command name -> "module:attribute"; the module is imported on first use.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("infuse.cli.quickstart:quickstart", "Run the whole comparison on a sample pack or your folder."),
    "data": ("infuse.cli.data:data", "Inspect, convert and synthesise training data."),
    "train": ("infuse.cli.train:train", "Fine-tune a LoRA adapter on your data."),
    "chat": ("infuse.cli.train:chat", "Chat with a base model plus a trained adapter."),
    "generate": ("infuse.cli.train:generate", "One answer from a base model plus a trained adapter."),
    "export": ("infuse.cli.train:export", "Export a run as adapter, merged weights or GGUF."),
    "kb": ("infuse.cli.kb:kb", "Build and search the knowledge base."),
    "ask": ("infuse.cli.ask:ask", "Answer a question with RAG or CAG."),
    "research": ("infuse.cli.research:research", "Research a question: knowledge base, then the web; a cited report."),
    "cag": ("infuse.cli.cag:cag", "Build a CAG cache: the whole knowledge in the KV cache."),
    "eval": ("infuse.cli.eval:eval_group", "Compare methods (or retrieval) on a question set."),
    "scrape": ("infuse.cli.scrape:scrape", "Crawl web pages into knowledge; extract structured records."),
    "serve": ("infuse.cli.serve:serve", "Serve the assistant: OpenAI-compatible API and MCP server."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when they are invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        target, _help = SUBCOMMANDS[name]
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and error.name.startswith("infuse"):
                return None
            raise
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above: listing commands must not import them.
        rows = [(name, help_text) for name, (_target, help_text) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="infuse")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """infuse: put your knowledge into an LLM assistant and measure which way works best."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# infuse never downloads: the Hugging Face libraries are told so before they are imported, so
# a missing model is an immediate error instead of a hang. Their per-file progress bars and
# info logs are noise in a CLI that shows its own progress.
QUIET_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",  # libraries' own tqdm bars (e.g. GGUF conversion); ours are rich
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; print infuse errors on one line (tracebacks only with --debug)."""
    for name, value in QUIET_OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    with warnings.catch_warnings():
        if not debug:
            # Deprecation notices from the libraries we call are for their maintainers.
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
        return _run(args, debug)


def _run(args: list[str], debug: bool) -> int:
    try:
        cli.main(args=args, prog_name="infuse", standalone_mode=False)
    except InfuseError as error:
        if debug:
            raise
        click.echo(f"Error: {error}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.exceptions.Exit as done:
        return done.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
