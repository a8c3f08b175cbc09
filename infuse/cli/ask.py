"""`infuse ask`: answer a question with RAG (knowledge base) or CAG (a prebuilt KV cache)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from infuse.cli.options import api_key_option
from infuse.cli.output import console, print_json
from infuse.errors import ConfigError


@click.command()
@click.argument("question")
@click.option("--mode", type=click.Choice(["rag", "cag"]), default="rag", show_default=True)
@click.option(
    "--kb",
    "location",
    envvar="INFUSE_KB",
    default=".infuse/kb",
    show_default=True,
    help="RAG: knowledge base folder or postgresql:// URL (env INFUSE_KB).",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="CAG: the cache folder made by `infuse cag build`.",
)
@click.option(
    "--model",
    default=None,
    help="Chat model: packaged name (smollm2), folder, .gguf, or the "
    "served model's name with --base-url.",
)
@click.option(
    "--base-url",
    envvar="INFUSE_BASE_URL",
    default=None,
    help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (env INFUSE_BASE_URL).",
)
@api_key_option()
@click.option(
    "-k", "k", type=int, default=5, show_default=True, help="RAG: passages given to the model."
)
@click.option(
    "--filter", "filter_pairs", multiple=True, metavar="KEY=VALUE", help="RAG: metadata filter."
)
@click.option("--reranker", default=None, help="RAG: local cross-encoder folder.")
@click.option(
    "--min-similarity",
    type=float,
    default=None,
    help="RAG: passages below this cosine similarity are not used (default 0.25).",
)
@click.option(
    "--max-new-tokens",
    type=int,
    default=128,
    show_default=True,
    help="Longest answer in tokens (an answer that starts repeating itself stops sooner).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (no streaming).")
def ask(
    question,
    mode,
    location,
    cache_dir,
    model,
    base_url,
    api_key,
    k,
    filter_pairs,
    reranker,
    min_similarity,
    max_new_tokens,
    as_json,
) -> None:
    """Answer QUESTION from your knowledge, citing sources (RAG) or from a CAG cache."""
    stream = None if as_json else _stream
    if mode == "cag":
        if cache_dir is None:
            raise ConfigError("--mode cag needs --cache DIR (build one with `infuse cag build`).")
        from infuse.cag import answer as cag_answer

        result = cag_answer(
            question,
            cache_dir,
            model=model,
            max_new_tokens=max_new_tokens,
            on_token=stream,
            base_url=base_url,
            api_key=api_key,
        )
    else:
        from infuse.cli.kb import parse_pairs
        from infuse.knowledge.rerank import Reranker
        from infuse.rag import DEFAULT_MIN_SIMILARITY, answer

        result = answer(
            question,
            location,
            model=model,
            base_url=base_url,
            api_key=api_key,
            k=k,
            filters=parse_pairs(filter_pairs, "--filter"),
            reranker=Reranker(reranker) if reranker else None,
            min_similarity=DEFAULT_MIN_SIMILARITY if min_similarity is None else min_similarity,
            max_new_tokens=max_new_tokens,
            on_token=stream,
        )
    if as_json:
        payload = result.to_dict()
        payload["facts"].pop("answer_token_ids", None)  # for tests and eval, not for people
        print_json(payload)
        return
    sys.stdout.write("\n")
    print_answer_sources(result)


def print_answer_sources(result) -> None:
    """After a streamed answer: the cited sources (or the passages given when none was cited), timings."""
    if result.citations:
        attributed = result.facts.get("citation_mode") == "attributed"
        console.print(
            "[bold]Sources[/bold] (matched to the answer's words; the model cited none)"
            if attributed else "[bold]Sources[/bold]"
        )
        for citation in result.citations:
            console.print(f"  [{citation.number}] {citation.source}", highlight=False, markup=False)
    elif result.facts.get("passages"):
        console.print("[bold]Passages given (none cited)[/bold]")
        for passage in result.facts["passages"]:
            console.print(
                f"  [{passage['number']}] {passage['source']}", highlight=False, markup=False
            )
    timings = ", ".join(f"{name} {value:.2f}s" for name, value in result.timings.items())
    console.print(f"[dim]{timings}[/dim]")


def _stream(token: str) -> None:
    sys.stdout.write(token)
    sys.stdout.flush()
