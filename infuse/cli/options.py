"""Click options shared by several commands: `--json`, option groups, dataset-reading options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from infuse.errors import ConfigError

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def option_group(*options: Callable) -> Callable[[Callable], Callable]:
    """One decorator that adds `options` to a command, in the order given (as `--help` lists them)."""

    def add(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return add


def path_option(flag: str, dest: str, help: str, *, folder: bool = False) -> Callable:
    """An optional `--flag PATH` (a folder when `folder`, else a file) given as a Path."""
    kind = click.Path(file_okay=not folder, dir_okay=folder, path_type=Path)
    return click.option(flag, dest, type=kind, default=None, help=help)


def api_key_option(envvar: str = "INFUSE_API_KEY") -> Callable:
    """`--api-key` for a `--base-url` server, read from `envvar` when not given."""
    return click.option(
        "--api-key", envvar=envvar, default=None, help=f"Key for --base-url (env {envvar})."
    )


def choice_option(flag: str, choices: list[str], help: str) -> Callable:
    """A `--flag` taking one of `choices`; the first is the default."""
    kind = click.Choice(choices)
    return click.option(flag, type=kind, default=choices[0], show_default=True, help=help)


# How rows become conversations (data inspect/convert, train).
conversation_options = option_group(
    click.option(
        "--merged-prompt",
        default=None,
        help="Merge columns into the user turn, e.g. '{title}[[\\n\\n{body}]]' "
        "([[...]] is dropped when its first column is empty).",
    ),
    click.option("--output-column", default=None, help="Column holding the answer."),
    click.option("--system-prompt", default=None, help="System turn added to every conversation."),
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
)


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
