"""Options and progress shared by `infuse scrape crawl` and `infuse scrape extract`."""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from infuse.cli.options import option_group
from infuse.cli.output import err_console
from infuse.errors import ConfigError

_fetch_option_group = option_group(
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
)


def fetch_options(command: Callable) -> Callable:
    """Add the politeness and safety options; the command receives them as one `fetch_config`."""

    @functools.wraps(command)
    def with_fetch_config(*args, delay, timeout, max_bytes, allow_private, allow_networks, **kwargs):
        fetch_config = build_fetch_config(delay, timeout, max_bytes, allow_private, allow_networks)
        return command(*args, fetch_config=fetch_config, **kwargs)

    return _fetch_option_group(with_fetch_config)


def kb_options(kb_help: str, embedder_help: str) -> Callable[[Callable], Callable]:
    """`--to-kb LOCATION` and `--embedder NAME`: the knowledge base that pages or records go to."""
    return option_group(
        click.option("--to-kb", "kb_location", default=None, help=kb_help),
        click.option("--embedder", default=None, help=embedder_help),
    )


def build_fetch_config(delay, timeout, max_bytes, allow_private, allow_networks):
    """The FetchConfig the options describe; ConfigError names a bad value."""
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
