"""`infuse cag`: build and inspect CAG caches (answers come from `infuse ask --mode cag`)."""

from __future__ import annotations

from pathlib import Path

import click

from infuse.cli.output import console, print_json
from infuse.models import DEFAULT_MODEL


@click.group()
def cag() -> None:
    """Build a CAG cache: the whole knowledge in the model's KV cache, saved to disk."""


@cag.command("build")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--kb",
    default=None,
    help="Take the documents of this knowledge base (folder or postgresql:// URL) as the knowledge.",
)
@click.option(
    "--model",
    "model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Packaged model name, saved transformers folder or .gguf file.",
)
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the cache to (kv.safetensors + manifest.json).",
)
@click.option(
    "--instructions", default=None, help="Instructions before the knowledge in the system turn."
)
@click.option(
    "--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)."
)
@click.option("--answer-room", default=512, show_default=True, help="Tokens kept free for answers.")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Replace a cache in --output that was built for another model (refused without it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def build(
    files: tuple[Path, ...],
    kb: str | None,
    model: str,
    output: Path,
    instructions: str | None,
    device: str | None,
    answer_room: int,
    rebuild: bool,
    as_json: bool,
) -> None:
    """Prefill FILES (or the documents of --kb) into MODEL's KV cache once; save it to --output."""
    from rich.progress import Progress

    from infuse.cag import DEFAULT_INSTRUCTIONS, build_cache
    from infuse.errors import ConfigError

    if kb is not None:
        from infuse.cag.knowledge import knowledge_files_from_kb

        files = (*files, *knowledge_files_from_kb(kb))
    if not files:
        raise ConfigError("Give knowledge FILES or --kb DIR to `infuse cag build`.")

    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("Prefilling the knowledge", total=None)
        manifest = build_cache(
            list(files),
            model,
            output,
            instructions=instructions or DEFAULT_INSTRUCTIONS,
            device=device,
            answer_room=answer_room,
            rebuild=rebuild,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        print_json({"cache_dir": str(output), **_summary(manifest)})
        return
    facts = manifest.facts
    console.print(
        f"CAG cache written to [bold]{output}[/]: {manifest.knowledge_tokens:,} knowledge tokens, "
        f"{facts.get('kv_bytes', 0) / 2**20:.1f} MiB, built in {facts.get('build_s', 0):.1f} s "
        f'with {manifest.model}.\nAsk with: infuse ask "your question" --mode cag --cache {output}'
    )


@cag.command("info")
@click.argument("cache_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(cache_dir: Path, as_json: bool) -> None:
    """Show what a CAG cache holds and what it was built from."""
    from infuse.cag import Manifest

    manifest = Manifest.read(cache_dir)
    if as_json:
        print_json(
            {"cache_dir": str(cache_dir), **_summary(manifest), "fingerprint": manifest.fingerprint}
        )
        return
    console.print(
        f"{cache_dir}: {manifest.knowledge_tokens:,} tokens of knowledge for {manifest.model}"
    )
    for source in manifest.sources:
        console.print(f"  from {source}")


def _summary(manifest) -> dict:
    payload = manifest.to_dict()
    payload.pop("fingerprint")
    payload.pop("system")
    return payload
