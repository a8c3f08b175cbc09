"""`infuse research`: plan, search (knowledge base and web), read, and write a cited report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from infuse.cli.output import console, print_json


@click.command()
@click.argument("question")
@click.option("--kb", "location", envvar="INFUSE_KB", default=None,
              help="Knowledge base read first (folder or postgresql:// URL; env INFUSE_KB).")
@click.option("--search", "search", default="none", show_default=True,
              help="Web search: searxng:URL, brave, tavily, exa (keys from BRAVE_API_KEY, "
              "TAVILY_API_KEY, EXA_API_KEY) or none.")
@click.option("--depth", type=int, default=2, show_default=True, help="Rounds of search.")
@click.option("--breadth", type=int, default=3, show_default=True, help="Queries per round.")
@click.option("--max-pages", type=int, default=6, show_default=True, help="Web pages read in all.")
@click.option("--max-calls", type=int, default=24, show_default=True, help="Model calls in all.")
@click.option("--max-seconds", type=float, default=300, show_default=True, help="Wall time.")
@click.option("--model", default=None, help="Chat model (packaged name, folder, or served name).")
@click.option("--base-url", envvar="INFUSE_BASE_URL", default=None,
              help="OpenAI-compatible server (env INFUSE_BASE_URL).")
@click.option("--api-key", envvar="INFUSE_API_KEY", default=None, help="Key for --base-url.")
@click.option("--allow-private", is_flag=True,
              help="Also read pages on private addresses (an intranet).")
@click.option("--to-kb", "to_kb", default=None, help="Add the web pages read to this knowledge base.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the report here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def research(question, location, search, depth, breadth, max_pages, max_calls, max_seconds,
             model, base_url, api_key, allow_private, to_kb, out, as_json) -> None:
    """Research QUESTION: knowledge base first, then the web; a Markdown report with checked citations."""
    from infuse.cli.progress import progress_bar
    from infuse.errors import ConfigError
    from infuse.research import Budget, report_dict, web_search
    from infuse.research import research as run_research
    from infuse.scrape.fetch import FetchConfig

    for name, value in (("--depth", depth), ("--breadth", breadth), ("--max-pages", max_pages),
                        ("--max-calls", max_calls), ("--max-seconds", max_seconds)):
        if value < 1:
            raise ConfigError(f"{name} {value}: give a number of at least 1.")
    if out is not None:
        from infuse.files import check_writable_folder

        check_writable_folder(out.parent if str(out.parent) else Path("."), setting="--out")
    engine = web_search(search)
    kb = target = None
    if location:
        from infuse.knowledge.kb import KnowledgeBase

        kb = KnowledgeBase(location)
    if to_kb:
        from infuse.knowledge.kb import KnowledgeBase

        target = kb if to_kb == location else KnowledgeBase(to_kb, create=True)
    chat = model
    if base_url:
        from infuse.llm import load_chat_model

        chat = load_chat_model(*([model] if model else []), base_url=base_url, api_key=api_key)
    budget = Budget(depth=depth, breadth=breadth, pages=max_pages, model_calls=max_calls,
                    seconds=max_seconds)
    with progress_bar("research", enabled=not as_json) as on_progress:
        answer = run_research(question, model=chat, kb=kb, search=engine, budget=budget,
                              fetch_config=FetchConfig(allow_private=allow_private),
                              to_kb=target, on_progress=on_progress)
    if out is not None:
        from infuse.files import write_text_atomic

        write_text_atomic(out, answer.text)
    if as_json:
        print_json(report_dict(answer))
        return
    sys.stdout.write(answer.text + "\n")
    dropped = answer.facts["dropped_citations"]
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in answer.timings.items())
    console.print(f"[dim]{answer.facts['model_calls']} model calls, "
                  f"{answer.facts['pages_fetched']} pages, {len(dropped)} citations dropped; "
                  f"{timings}[/dim]")
    if out is not None:
        console.print(f"Report written to {out}", highlight=False)
