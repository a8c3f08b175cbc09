"""Click options shared by commands that read a dataset (data inspect/convert, train)."""

from __future__ import annotations

from collections.abc import Callable

import click

from infuse.errors import ConfigError


def conversation_options(command: Callable) -> Callable:
    """Add the options that say how rows become conversations."""
    options = [
        click.option(
            "--merged-prompt",
            default=None,
            help="Merge columns into the user turn, e.g. '{title}[[\\n\\n{body}]]' "
            "([[...]] is dropped when its first column is empty).",
        ),
        click.option("--output-column", default=None, help="Column holding the answer."),
        click.option(
            "--system-prompt", default=None, help="System turn added to every conversation."
        ),
        click.option(
            "--conversation-extension",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Join each row with N-1 random others into one multi-turn conversation.",
        ),
        click.option(
            "--seed",
            "random_state",
            type=int,
            default=3407,
            show_default=True,
            help="Seed of the conversation-extension shuffles.",
        ),
        click.option(
            "--role-alias",
            "role_aliases",
            multiple=True,
            metavar="NAME=ROLE",
            help="Map an unknown role, e.g. --role-alias bot=assistant.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def parse_role_aliases(pairs: tuple[str, ...]) -> dict[str, str]:
    """'bot=assistant' pairs into a dict; the role must be system, user or assistant."""
    aliases: dict[str, str] = {}
    for pair in pairs:
        name, _, role = pair.partition("=")
        if not name or role not in ("system", "user", "assistant"):
            raise ConfigError(f"--role-alias '{pair}': expected NAME=system|user|assistant.")
        aliases[name] = role
    return aliases


def unescape_prompt(prompt: str | None) -> str | None:
    """`\\n` and `\\t` typed on a command line become a newline and a tab."""
    if prompt is None:
        return None
    return prompt.replace("\\n", "\n").replace("\\t", "\t")
