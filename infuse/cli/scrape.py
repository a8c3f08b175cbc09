"""`infuse scrape`: crawl a site into documents (a knowledge base or Markdown files); extract records."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import click

from infuse.cli.output import console, err_console, print_json
from infuse.errors import ConfigError, DataError

OUT_MARKER = ".infuse-scrape"
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def fetch_options(command):
    """Politeness and safety options shared by crawl and extract."""
    options = [
        click.option(
            "--delay",
            type=float,
            default=1.0,
            show_default=True,
            help="Seconds between requests to one host (robots.txt Crawl-delay is a floor).",
        ),
        click.option(
            "--timeout",
            type=float,
            default=20.0,
            show_default=True,
            help="Read timeout per request, seconds.",
        ),
        click.option(
            "--max-bytes",
            type=int,
            default=10 * 1024 * 1024,
            show_default=True,
            help="Largest body read, counted after decompression.",
        ),
        click.option(
            "--allow-private",
            is_flag=True,
            help="Allow loopback/private/link-local addresses (your own intranet).",
        ),
        click.option(
            "--allow-network",
            "allow_networks",
            multiple=True,
            metavar="CIDR",
            help="Allow just this private network, e.g. 10.1.0.0/16 (repeatable).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_fetch_config(delay, timeout, max_bytes, allow_private, allow_networks):
    import ipaddress

    from infuse.scrape.fetch import FetchConfig

    for network in allow_networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as error:
            raise ConfigError(
                f"--allow-network {network!r}: not a CIDR such as 10.0.0.0/8."
            ) from error
    if delay < 0 or timeout <= 0 or max_bytes <= 0:
        raise ConfigError("--delay must be >= 0, --timeout and --max-bytes > 0.")
    return FetchConfig(
        min_delay=delay,
        read_timeout=timeout,
        total_timeout=max(timeout * 3, 60.0),
        max_bytes=max_bytes,
        allow_private=allow_private,
        allow_networks=list(allow_networks),
    )


class PageProgress:
    """Draws crawl progress: a rich bar on a terminal, one plain line per page otherwise."""

    def __init__(self, enabled: bool, label: str = "Crawling"):
        self.enabled = enabled
        self.label = label
        self.bar = None

    def __enter__(self) -> PageProgress:
        if self.enabled and err_console.is_terminal:
            from rich.progress import Progress

            self.bar = Progress(console=err_console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None)
        return self

    def __call__(self, done: int, total: int, **info) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(
                self.task,
                completed=done,
                total=total,
                description=f"{self.label} {info.get('url', '')}"[:100],
            )
        else:
            err_console.print(
                f"[{done}/{total}] {info.get('state', '')} {info.get('url', '')}",
                highlight=False,
                markup=False,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


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
    folder.mkdir(parents=True, exist_ok=True)
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
@click.option(
    "--scope",
    type=click.Choice(["host", "domain", "prefix"]),
    default="host",
    show_default=True,
    help="Stay on the start host, its domain, or under the start URL's folder.",
)
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only URLs matching one of these globs."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Never URLs matching these globs.")
@click.option("--no-sitemap", is_flag=True, help="Do not seed from the site's sitemap.")
@click.option(
    "--render",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Render JavaScript pages in headless Chromium (auto: when a page has almost no text).",
)
@click.option(
    "--to-kb",
    "kb_location",
    default=None,
    help="Add pages to this knowledge base (folder or postgresql:// URL).",
)
@click.option(
    "--embedder",
    default=None,
    help="With --to-kb: embedding model (default: the knowledge base's, else minilm).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write pages as Markdown files into this folder.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Resume file (default under .infuse/scrape/); Ctrl-C, then the same command resumes.",
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
    delay,
    timeout,
    max_bytes,
    allow_private,
    allow_networks,
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
        fetch=build_fetch_config(delay, timeout, max_bytes, allow_private, allow_networks),
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
        raise click.exceptions.Exit(130)


@scrape.command("extract")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "--schema",
    "schema_spec",
    default=None,
    help="JSON Schema file or module:PydanticModel; each field comes with an evidence quote.",
)
@click.option(
    "--selectors",
    "selectors_path",
    default=None,
    help="JSON file of CSS/XPath selectors per field (no model).",
)
@click.option(
    "--model",
    "model_spec",
    default=None,
    help="Chat model: packaged name (default smollm2), folder, or the served name with --base-url.",
)
@click.option("--base-url", default=None, help="OpenAI-compatible server to extract with.")
@click.option(
    "--api-key",
    envvar="OPENAI_API_KEY",
    default=None,
    help="Key for --base-url (env OPENAI_API_KEY).",
)
@click.option(
    "--max-retries",
    type=int,
    default=2,
    show_default=True,
    help="Retries of an invalid answer, with the error.",
)
@click.option(
    "--chunk-chars",
    type=int,
    default=6000,
    show_default=True,
    help="Long pages are cut into parts of this size and merged.",
)
@click.option("--max-new-tokens", type=int, default=1024, show_default=True)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write records to F.jsonl or F.csv.",
)
@click.option(
    "--to-dataset",
    "dataset_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write rows (url + fields) to F.jsonl for `infuse data`.",
)
@click.option(
    "--to-kb",
    "kb_location",
    default=None,
    help="Add the records to this knowledge base (one document per record).",
)
@click.option("--embedder", default=None, help="With --to-kb: embedding model.")
@fetch_options
@json_option
def extract_command(
    targets,
    schema_spec,
    selectors_path,
    model_spec,
    base_url,
    api_key,
    max_retries,
    chunk_chars,
    max_new_tokens,
    out_path,
    dataset_path,
    kb_location,
    embedder,
    delay,
    timeout,
    max_bytes,
    allow_private,
    allow_networks,
    as_json,
) -> None:
    """Extract records from URLs or saved pages (files, folders) by --schema or --selectors."""
    from infuse.scrape.extract import extract_pages, write_records

    if bool(schema_spec) == bool(selectors_path):
        raise ConfigError("Give exactly one of --schema FILE|module:Model or --selectors FILE.")
    fetch_config = build_fetch_config(delay, timeout, max_bytes, allow_private, allow_networks)
    schema = selectors = model = None
    if selectors_path:
        from infuse.scrape.selecting import load_selectors

        selectors = load_selectors(selectors_path)
    else:
        from infuse.scrape.structured import load_schema

        schema = load_schema(schema_spec)
        from infuse.llm import load_chat_model

        if base_url and not model_spec:
            raise ConfigError("--base-url needs --model: the name the server serves.")
        model = (
            load_chat_model(model_spec, base_url=base_url, api_key=api_key)
            if model_spec
            else load_chat_model()
        )
    try:
        with PageProgress(not as_json, "Extracting") as progress:
            report = extract_pages(
                list(targets),
                schema=schema,
                model=model,
                selectors=selectors,
                fetch_config=fetch_config,
                max_retries=max_retries,
                chunk_chars=chunk_chars,
                max_new_tokens=max_new_tokens,
                on_progress=progress,
            )
    finally:
        if model is not None and hasattr(model, "close"):
            model.close()
    if out_path:
        write_records(report.results, out_path)
    if dataset_path:
        write_records(report.results, dataset_path, rows=True)
    if kb_location:
        from infuse.knowledge.kb import KnowledgeBase
        from infuse.scrape.extract import record_documents

        with KnowledgeBase(kb_location, create=True, embedder=embedder) as knowledge:
            ingest = knowledge.add_documents(record_documents(report.results))
        payload_kb = {key: len(getattr(ingest, key)) for key in ("added", "updated", "unchanged")}
    else:
        payload_kb = None
    payload = report.to_dict()
    if payload_kb is not None:
        payload["kb"] = payload_kb
    if as_json:
        print_json(payload)
        return
    for item in report.skipped:
        err_console.print(f"[yellow]Skipped[/yellow] {item['reason']}", highlight=False)
    for result in report.results:
        for flag in result.flags:
            err_console.print(
                f"[yellow]Flagged[/yellow] {result.url} {flag['field']}: {flag['reason']}",
                highlight=False,
            )
    if not out_path and not dataset_path and not kb_location:
        for result in report.results:
            console.print_json(
                json.dumps(
                    {"url": result.url, "data": result.data}, ensure_ascii=False, default=str
                )
            )
    counts = payload["counts"]
    console.print(
        f"{counts['with_data']} of {counts['pages']} pages gave a record, {counts['flagged']} with flagged fields, {counts['skipped']} skipped",
        highlight=False,
    )
