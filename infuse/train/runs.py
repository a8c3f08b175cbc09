"""The run folder and its record: what `infuse train` writes and eval, chat and export read.

A run folder holds

    run.json              the run record: status, what it trained on, what it measured
    config.toml           the exact settings (`RunConfig`), the one file resume layers on
    chat_template.jinja   the exact chat template the run trained with
    metrics.jsonl         one object per logged step (infuse.train.metrics)
    adapter_model.safetensors + adapter_config.json   the LoRA adapter (peft format)
    checkpoints/step-N/   what `--resume` continues from (infuse.train.checkpoint)
    run.lock              held while a process trains into the folder

`RunRecord` is the one reader and writer of the first three. Chat and generation always use
the template the run trained on; asking for a different one is refused, because a template
mismatch between training and chat is the most common reason a fine-tune "does not work".
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError, DataError, ModelNotFoundError, TemplateError
from infuse.files import write_text_atomic
from infuse.train.config import RunConfig, config_from_mapping, dump_toml, load_config_file

RECORD_FILE = "run.json"
CONFIG_FILE = "config.toml"
TEMPLATE_FILE = "chat_template.jinja"
METRICS_FILE = "metrics.jsonl"
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
LOCK_FILE = "run.lock"
# Any of these in a folder says infuse trained (or is training) there.
RUN_MARKERS = (RECORD_FILE, LOCK_FILE, "checkpoints", ADAPTER_CONFIG_FILE)


@dataclass
class RunRecord:
    """One training run: its settings, what it trained on and what it measured.

    `write(run_dir)` stores it as run.json + config.toml (+ chat_template.jinja);
    `RunRecord.read(run_dir)` reads them back with the loss curve of metrics.jsonl.
    """

    config: RunConfig
    status: str = "running"  # running | finished
    model_path: str | None = None
    device: str | None = None
    dtype: str | None = None
    backend: str | None = None
    fused_kernels: bool | None = None
    distributed: str = "none"
    processes: int = 1
    train_examples: int | None = None  # conversations trained on (after the eval split)
    eval_examples: int | None = None
    dropped_examples: int = 0  # rows left out because their answer was null or empty
    model_parameters: int | None = None  # of the base model, LoRA excluded
    trainable_parameters: int | None = None
    supervised_token_fraction: float | None = None  # share of training tokens with a label
    unlabelled_examples: int | None = None  # training rows with no label at all (mask missed them)
    total_steps: int | None = None
    steps: int = 0
    training_s: float | None = None
    final_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    started: str | None = None
    finished: str | None = None
    infuse_version: str | None = None
    # read from the folder, not stored in run.json
    run_dir: Path | None = None
    chat_template: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list, repr=False)

    _NOT_STORED = ("config", "run_dir", "chat_template", "metrics")

    @property
    def is_finished(self) -> bool:
        return self.status == "finished"

    def facts(self) -> dict[str, Any]:
        """What run.json holds: every field but the settings, the template and the metrics."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in self._NOT_STORED}

    def to_dict(self) -> dict[str, Any]:
        """The record as plain values (settings included, metrics and template left out)."""
        return {"run_dir": str(self.run_dir) if self.run_dir else None, **self.facts(),
                "config": self.config.to_dict()}

    def write(self, run_dir: str | Path | None = None) -> Path:
        """Write run.json and config.toml (and the template when known) atomically; returns run.json."""
        run_dir = Path(run_dir or self.run_dir)
        self.run_dir = run_dir
        if self.started is None:
            self.started = _now()
        if self.infuse_version is None:
            from infuse import __version__

            self.infuse_version = __version__
        write_text_atomic(run_dir / CONFIG_FILE, dump_toml(self.config.to_dict()))
        if self.chat_template is not None:
            write_text_atomic(run_dir / TEMPLATE_FILE, self.chat_template)
        return write_text_atomic(run_dir / RECORD_FILE, json.dumps(self.facts(), indent=2) + "\n")

    def mark_finished(self) -> None:
        self.status = "finished"
        self.finished = _now()

    @classmethod
    def read(cls, run_dir: str | Path, *, metrics: bool = True) -> RunRecord:
        """Read a run folder; ModelNotFoundError when it holds no infuse run, DataError when a file is damaged.

        A run from before run.json existed (config.toml only) reads with its facts unknown.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ModelNotFoundError(
                f"Run folder {run_dir} does not exist. Give the --output folder of `infuse train`."
            )
        record_path, config_path = run_dir / RECORD_FILE, run_dir / CONFIG_FILE
        if not record_path.exists() and not config_path.exists():
            raise ModelNotFoundError(
                f"{run_dir} is not an infuse run (no {RECORD_FILE} or {CONFIG_FILE}). "
                "Train one with `infuse train --output DIR`."
            )
        if not config_path.exists():
            raise DataError(f"{config_path} is missing: the run lost its settings; retrain or restore it.")
        try:
            config = config_from_mapping(load_config_file(config_path), source=str(config_path))
        except ConfigError as error:
            raise DataError(str(error)) from None
        facts: dict[str, Any] = {}
        if record_path.exists():
            try:
                facts = json.loads(record_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise DataError(f"{record_path}: not valid JSON ({error}); the run record is damaged.") from None
            if not isinstance(facts, dict):
                raise DataError(f"{record_path}: expected a JSON object; the run record is damaged.")
        stored = {f.name: str(f.type) for f in dataclasses.fields(cls) if f.name not in cls._NOT_STORED}
        values = {key: value for key, value in facts.items() if key in stored}
        for key, value in values.items():
            expected = _expected_types(stored[key])
            if value is not None and expected and not isinstance(value, expected):
                raise DataError(f"{record_path}: '{key}' should be {stored[key]}, got {value!r}; "
                                "the run record is damaged.")
        record = cls(config=config, run_dir=run_dir, **values)
        template = run_dir / TEMPLATE_FILE
        if template.exists():
            record.chat_template = template.read_text(encoding="utf-8")
        if metrics and (run_dir / METRICS_FILE).exists():
            from infuse.train.metrics import read_metrics

            record.metrics = read_metrics(run_dir / METRICS_FILE)
        return record

    def curve(self) -> list[dict[str, Any]]:
        """The loss curve: `step`, `loss` and/or `eval_loss` per logged step, in step order."""
        points = []
        for row in self.metrics:
            point = {"step": row["step"]}
            for key in ("loss", "eval_loss"):
                if isinstance(row.get(key), (int, float)):
                    point[key] = float(row[key])
            if len(point) > 1:
                points.append(point)
        return sorted(points, key=lambda p: p["step"])


def _expected_types(annotation: str) -> tuple[type, ...]:
    """Python types a stored field may hold, from its annotation text (bool is no number here)."""
    if annotation.startswith("bool"):
        return (bool,)
    if annotation.startswith(("int", "float")):
        return (int, float)
    if annotation.startswith("str"):
        return (str,)
    if annotation.startswith("list"):
        return (list,)
    return ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_run_folder(path: str | Path) -> bool:
    """True when `path` holds something infuse train wrote (see RUN_MARKERS)."""
    return any((Path(path) / marker).exists() for marker in RUN_MARKERS)


def check_adapter_file(path: str | Path) -> None:
    """Refuse a missing or damaged safetensors file (header unreadable, or shorter than it says).

    Reads only the header, so it is instant on any size. Raises DataError naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing: the run has no adapter weights. Retrain, or restore the file.")
    size = path.stat().st_size
    problem = None
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            if len(head) < 8:
                problem = f"{size} bytes, too short for a safetensors header"
            else:
                (header_len,) = struct.unpack("<Q", head)
                if header_len > size - 8:
                    problem = "its header runs past the end of the file"
                else:
                    header = json.loads(stream.read(header_len))
                    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"),
                              default=0)
                    if 8 + header_len + end > size:
                        problem = f"{size} bytes, but its header describes {8 + header_len + end}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        problem = f"unreadable ({error})"
    if problem:
        raise DataError(f"{path} is damaged (truncated or not safetensors: {problem}). "
                        "Retrain, or restore the file from a backup or a checkpoint.")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The RunConfig of a finished run; ModelNotFoundError when the folder is no finished run,
    DataError when its adapter file is missing or damaged."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists() or not (run_dir / ADAPTER_CONFIG_FILE).exists():
        raise ModelNotFoundError(
            f"{run_dir} is not a finished infuse run (needs {CONFIG_FILE} and {ADAPTER_CONFIG_FILE}). "
            "Train one with `infuse train --output DIR`."
        )
    check_adapter_file(run_dir / ADAPTER_FILE)
    return RunRecord.read(run_dir, metrics=False).config


def resolve_run_config(settings: dict[str, Any], *, config_file: str | Path | None = None,
                       resume: bool = False) -> RunConfig:
    """The settings of a run, in layers (later wins), validated.

    When resuming, the run's own config.toml (in `settings["output"]`) comes first, so a run
    continues with the settings it started with; then the TOML `config_file`; then `settings`
    (what the caller set explicitly; None values are left out). Raises ConfigError naming the
    file or setting at fault.
    """
    values: dict[str, Any] = {}
    output = settings.get("output")
    if resume and output and (Path(output) / CONFIG_FILE).exists():
        values.update(load_config_file(Path(output) / CONFIG_FILE))
    elif resume and output and not settings.get("data") and not config_file:
        raise ConfigError(
            f"--resume: {output} holds no run to resume (no {CONFIG_FILE}). Check --output, or "
            "start a new run with --data FILE."
        )
    if config_file:
        values.update(load_config_file(config_file))
    values.update({key: value for key, value in settings.items() if value is not None})
    return config_from_mapping(values, source=str(config_file) if config_file else "settings").validate()


def run_template(run_dir: str | Path, requested: str | None = None) -> str:
    """The chat template the run trained on; TemplateError if `requested` names a different one."""
    run_dir = Path(run_dir)
    path = run_dir / TEMPLATE_FILE
    if not path.exists():
        raise TemplateError(f"{path} is missing: the run folder lost its chat template; retrain or restore it.")
    stored = path.read_text(encoding="utf-8")
    if requested:
        config = read_run_config(run_dir)
        from infuse.models import resolve_chat_model
        from infuse.train.examples import apply_chat_template_choice
        from infuse.train.model import load_tokenizer_for

        tokenizer = load_tokenizer_for(resolve_chat_model(config.model))
        wanted = apply_chat_template_choice(tokenizer, requested)
        if wanted.strip() != stored.strip():
            trained = config.chat_template or "the model's own template"
            raise TemplateError(
                f"{run_dir} was trained with {trained} (stored in {TEMPLATE_FILE}); --chat-template "
                f"{requested} renders differently, and the adapter would see prompts it never saw. "
                "Drop --chat-template: the run's own template is used automatically."
            )
    return stored


def load_run_model(run_dir: str | Path, *, chat_template: str | None = None, device: str | None = None):
    """A `LocalChatModel` of base + the run's adapter, set to the run's exact chat template."""
    from infuse.llm.loading import load_local_chat_model

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    template = run_template(run_dir, chat_template)
    chat_model = load_local_chat_model(config.model, adapter=str(run_dir), device=device)
    chat_model.tokenizer.chat_template = template
    return chat_model


def generate_from_run(run_dir: str | Path, prompt: str, *, system: str | None = None,
                      max_new_tokens: int = 128, temperature: float = 0.0,
                      chat_template: str | None = None, chat_model=None):
    """One answer to `prompt` from base + adapter; returns an `infuse.llm.Generation`."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens}: must be >= 1.")
    chat_model = chat_model or load_run_model(run_dir, chat_template=chat_template)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return chat_model.generate(messages, max_new_tokens=max_new_tokens, temperature=temperature)
