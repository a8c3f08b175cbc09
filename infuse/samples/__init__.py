"""Sample knowledge packs shipped with infuse, for `infuse quickstart` and the tests.

A pack is a folder holding `docs/` (the knowledge, markdown), `questions.jsonl` (eval
questions with short reference answers, the document they come from, and `tags`; the
tag `cpu` marks the fixed subset a CPU quickstart evaluates) and `train.jsonl` (the same
facts asked differently, in OpenAI messages form, for fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infuse.errors import ConfigError

DEFAULT_PACK = "nimbus"


@dataclass(frozen=True)
class SamplePack:
    """Where a sample pack's parts are on disk."""

    name: str
    root: Path

    @property
    def docs_dir(self) -> Path:
        return self.root / "docs"

    @property
    def documents(self) -> list[Path]:
        return sorted(self.docs_dir.glob("*.md"))

    @property
    def questions(self) -> Path:
        return self.root / "questions.jsonl"

    @property
    def train(self) -> Path:
        return self.root / "train.jsonl"


def list_sample_packs() -> list[str]:
    """Names of the packs shipped with infuse."""
    here = Path(__file__).parent
    return sorted(p.name for p in here.iterdir() if (p / "questions.jsonl").exists())


def sample_pack(name: str = DEFAULT_PACK) -> SamplePack:
    """Return the sample pack `name` (default: the Nimbus Orchard Labs pack).

    Raises ConfigError naming the packs that exist when `name` is unknown.
    """
    root = Path(__file__).parent / name
    if not (root / "questions.jsonl").exists():
        known = ", ".join(list_sample_packs()) or "none"
        raise ConfigError(f"No sample pack called '{name}'. Packs shipped with infuse: {known}.")
    return SamplePack(name=name, root=root)
