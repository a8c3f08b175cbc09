"""How the CLI prints: rich for people, one JSON object for machines (`--json`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(payload: dict[str, Any]) -> None:
    """Print one JSON object on stdout (what `--json` promises)."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
