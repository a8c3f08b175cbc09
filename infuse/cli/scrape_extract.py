"""`infuse scrape extract`: records from URLs or saved pages, by --schema (a model) or --selectors."""

from __future__ import annotations

import json

import click

from infuse.cli.options import api_key_option, json_option, path_option
from infuse.cli.output import console, err_console, print_json
from infuse.cli.scrape_options import PageProgress, fetch_options, kb_options
from infuse.errors import ConfigError


@click.command("extract")
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
@api_key_option("OPENAI_API_KEY")
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
@path_option("--out", "out_path", "Write records to F.jsonl or F.csv.")
@path_option("--to-dataset", "dataset_path", "Write rows (url + fields) to F.jsonl for `infuse data`.")
@kb_options(
    "Add the records to this knowledge base (one document per record).",
    "With --to-kb: embedding model.",
)
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
    fetch_config,
    as_json,
) -> None:
    """Extract records from URLs or saved pages (files, folders) by --schema or --selectors."""
    from infuse.scrape.extract import extract_pages, write_records

    if bool(schema_spec) == bool(selectors_path):
        raise ConfigError("Give exactly one of --schema FILE|module:Model or --selectors FILE.")
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
                list(targets), schema=schema, model=model, selectors=selectors,
                fetch_config=fetch_config, max_retries=max_retries, chunk_chars=chunk_chars,
                max_new_tokens=max_new_tokens, on_progress=progress,
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
