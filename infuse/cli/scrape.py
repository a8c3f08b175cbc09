"""`infuse scrape`: crawl a site into documents (a knowledge base or Markdown files); extract records."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import click

from infuse.cli.options import choice_option, json_option, path_option
from infuse.cli.output import console, err_console, print_json
from infuse.cli.scrape_options import PageProgress, fetch_options, kb_options
from infuse.errors import ConfigError, DataError

OUT_MARKER = ".infuse-scrape"
def default_state_path(urls: tuple[str, ...], target: str) -> Path:
    digest = hashlib.sha256(json.dumps([list(urls), target]).encode()).hexdigest()[:16]
    return Path(".infuse") / "scrape" / f"crawl-{digest}.json"


def markdown_path(folder: Path, url: str) -> Path:
    """Where a page's Markdown goes under --out: host/path, `index` for folders, query hashed."""
    parts = urlsplit(url)
    path = parts.path.strip("/") or "index"
    if parts.path.endswith("/") and parts.path != "/":
        path += "/index"
    path = re.sub(r"[^A-Za-z0-9._/-]", "_", path)
    path = re.sub(r"\.(html?|php|aspx?)$", "", path)
    if parts.query:
        path += "-" + hashlib.sha256(parts.query.encode()).hexdigest()[:8]
    host = re.sub(r"[^A-Za-z0-9._-]", "_", parts.netloc)
    return folder / host / f"{path}.md"


def own_folder(folder: Path) -> None:
    """Use `folder` for output only if it is new, empty or ours (it carries our marker)."""
    if folder.exists() and any(folder.iterdir()) and not (folder / OUT_MARKER).exists():
        raise ConfigError(
            f"--out {folder} holds files infuse did not write; give a new or empty folder."
        )
    from infuse.files import check_writable_folder

    check_writable_folder(folder, setting="--out folder")  # before any page is fetched
    (folder / OUT_MARKER).write_text("written by infuse scrape\n", encoding="utf-8")


def write_markdown(folder: Path, documents) -> None:
    from infuse.files import write_text_atomic

    for document in documents:
        front = {"source": document.source, "title": document.title, **document.metadata}
        lines = [
            "---",
            *(
                f"{key}: {json.dumps(str(value), ensure_ascii=False)}"
                for key, value in front.items()
            ),
            "---",
            "",
        ]
        write_text_atomic(
            markdown_path(folder, document.source), "\n".join(lines) + document.text + "\n"
        )


@click.group()
def scrape() -> None:
    """Crawl web pages into knowledge, or extract structured records from them."""


@scrape.command("crawl")
@click.argument("urls", nargs=-1, required=True)
@click.option("--max-pages", type=int, default=100, show_default=True, help="Most pages fetched.")
@click.option(
    "--depth",
    "max_depth",
    type=int,
    default=3,
    show_default=True,
    help="Most links followed from a start URL.",
)
@choice_option(
    "--scope",
    ["host", "domain", "prefix"],
    "Stay on the start host, its domain, or under the start URL's folder.",
)
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only URLs matching one of these globs."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Never URLs matching these globs.")
@click.option("--no-sitemap", is_flag=True, help="Do not seed from the site's sitemap.")
@choice_option(
    "--render",
    ["auto", "always", "never"],
    "Render JavaScript pages in headless Chromium (auto: when a page has almost no text).",
)
@kb_options(
    "Add pages to this knowledge base (folder or postgresql:// URL).",
    "With --to-kb: embedding model (default: the knowledge base's, else minilm).",
)
@path_option("--out", "out_dir", "Write pages as Markdown files into this folder.", folder=True)
@path_option(
    "--state",
    "state_path",
    "Resume file (default under .infuse/scrape/); Ctrl-C, then the same command resumes.",
)
@fetch_options
@json_option
def crawl_command(
    urls,
    max_pages,
    max_depth,
    scope,
    include,
    exclude,
    no_sitemap,
    render,
    kb_location,
    embedder,
    out_dir,
    state_path,
    fetch_config,
    as_json,
) -> None:
    """Crawl from URLS politely (robots.txt, per-host delay) into documents whose source is their URL."""
    from infuse.scrape.crawl import CrawlConfig, crawl

    if bool(kb_location) == bool(out_dir):
        raise ConfigError(
            "Give exactly one of --to-kb DIR (knowledge base) or --out DIR (Markdown files)."
        )
    config = CrawlConfig(
        max_pages=max_pages,
        max_depth=max_depth,
        scope=scope,
        include=list(include),
        exclude=list(exclude),
        sitemaps=not no_sitemap,
        render=render,
        fetch=fetch_config,
    )
    state_path = state_path or default_state_path(urls, str(kb_location or out_dir))
    ingest = None
    if kb_location:
        from infuse.knowledge.kb import KnowledgeBase

        knowledge = KnowledgeBase(kb_location, create=True, embedder=embedder)
        reports = []

        def sink(documents):
            reports.append(knowledge.add_documents(documents))
    else:
        own_folder(out_dir)
        knowledge = None

        def sink(documents):
            write_markdown(out_dir, documents)

    try:
        with PageProgress(not as_json) as progress:
            result = crawl(
                list(urls), config, state_path=state_path, on_documents=sink, on_progress=progress
            )
    finally:
        if knowledge is not None:
            knowledge.close()
    started = [page for page in result.pages if page.url in urls]
    if not result.interrupted and started and all(page.state == "skipped" for page in started):
        reason = started[0].reason or "no answer"
        error = ConfigError if "refused" in reason else DataError
        raise error(f"Nothing crawled: {started[0].url}: {reason}")
    payload = result.to_dict()
    if kb_location:
        ingest = {"added": [], "updated": [], "unchanged": []}
        for report in reports:
            for key in ingest:
                ingest[key] += getattr(report, key, [])
        payload["kb"] = {key: len(value) for key, value in ingest.items()}
    if as_json:
        print_json(payload)
    else:
        for page in result.pages:
            if page.state in ("skipped", "gone"):
                err_console.print(
                    f"[yellow]Skipped[/yellow] {page.url}: {page.reason}", highlight=False
                )
        counts = result.counts
        where = f"knowledge base {kb_location}" if kb_location else str(out_dir)
        console.print(
            f"{counts.get('added', 0)} pages with text, {counts.get('skipped', 0) + counts.get('gone', 0)} skipped, "
            f"{counts.get('empty', 0)} without text, {counts['requests']} requests -> {where}",
            highlight=False,
        )
        if ingest:
            console.print(
                f"{len(ingest['added'])} documents added, {len(ingest['updated'])} updated, {len(ingest['unchanged'])} unchanged",
                highlight=False,
            )
    if result.interrupted:
        err_console.print(
            f"Stopped. Run the same command again to resume (state in {state_path}).",
            highlight=False,
        )
        raise click.Abort()  # exit status 130, like any interrupted command


def _attach_extract() -> None:
    """`infuse scrape extract` lives in its own module (scrape_extract.py)."""
    from infuse.cli.scrape_extract import extract_command

    scrape.add_command(extract_command)


_attach_extract()
