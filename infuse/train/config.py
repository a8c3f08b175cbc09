"""`RunConfig`: every setting of one fine-tuning run, with its defaults in one place.

Config flows one way: CLI flags and/or a TOML file -> `RunConfig` -> `validate()` once ->
the training code reads plain attributes. The same object is written to the run folder as
`config.toml`, so a run can be inspected and resumed with exactly the settings it started with.
No torch import here: building and checking a config is instant.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.files import write_text_atomic  # noqa: F401  (re-exported for the train package)
from infuse.models import DEFAULT_MODEL

SCHEDULES = ("linear", "cosine", "constant")
BACKENDS = ("auto", "hf", "unsloth")
DTYPES = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
DISTRIBUTED = ("auto", "ddp", "fsdp", "none")  # under torchrun/accelerate (infuse.train.distributed)
# Every linear layer of attention and MLP in Llama-family models (and most others).
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class RunConfig:
    """All settings of one LoRA run. Field names are the TOML keys and the CLI flag names."""

    # what to train on
    data: str = ""
    output: str = ""
    model: str = DEFAULT_MODEL
    chat_template: str | None = None  # None: the tokenizer's own template
    merged_prompt: str | None = None
    output_column: str | None = None
    system_prompt: str | None = None
    conversation_extension: int = 1
    # LoRA
    lora_r: int = 16
    lora_alpha: int | None = None  # None: equal to lora_r
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    use_rslora: bool = False
    load_in_4bit: bool = False
    # optimisation
    learning_rate: float = 2e-4
    lr_schedule: str = "linear"
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_epochs: int = 1
    max_steps: int | None = None  # when set, wins over num_epochs
    batch_size: int = 2
    grad_accum: int = 4
    max_seq_len: int = 2048
    packing: bool = False
    train_on_responses_only: bool = True
    gradient_checkpointing: bool = True
    seed: int = 3407
    # evaluation, logging, checkpoints
    eval_split: float = 0.0  # fraction of conversations held out for eval loss
    eval_every: int = 20
    log_every: int = 1
    save_every: int = 50
    keep_checkpoints: int = 2
    # where and how
    backend: str = "auto"
    dtype: str = "auto"
    device: str = "auto"
    fused_kernels: bool = True  # CUDA only: fused RMSNorm/SwiGLU kernels
    compile_layers: bool = True  # CUDA only: torch.compile each decoder layer (1.5x on an H100)
    distributed: str = "auto"  # several processes: ddp | fsdp | auto (DDP if the model fits a device)

    @property
    def alpha(self) -> int:
        """The LoRA alpha actually used (defaults to r)."""
        return self.lora_alpha if self.lora_alpha is not None else self.lora_r

    def validate(self) -> RunConfig:
        """Check every setting that needs no model or data; raise ConfigError naming the fix."""
        problems: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        need(bool(self.data), "data: give a dataset file with --data FILE")
        need(bool(self.output), "output: give a run folder with --output DIR")
        need(self.lora_r > 0, f"lora_r={self.lora_r}: the LoRA rank must be a positive integer (e.g. 16)")
        need(self.alpha > 0, f"lora_alpha={self.lora_alpha}: must be positive (default: equal to r)")
        need(0.0 <= self.lora_dropout < 1.0, f"lora_dropout={self.lora_dropout}: must be in [0, 1)")
        need(bool(self.target_modules), "target_modules: name at least one module (e.g. q_proj)")
        need(self.learning_rate > 0, f"learning_rate={self.learning_rate}: must be positive (e.g. 2e-4)")
        need(self.lr_schedule in SCHEDULES, f"lr_schedule='{self.lr_schedule}': use one of {', '.join(SCHEDULES)}")
        need(self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps}: must be >= 0")
        need(self.weight_decay >= 0, f"weight_decay={self.weight_decay}: must be >= 0")
        need(self.max_grad_norm >= 0, f"max_grad_norm={self.max_grad_norm}: must be >= 0 (0 turns clipping off)")
        need(self.num_epochs >= 1, f"num_epochs={self.num_epochs}: must be >= 1")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps={self.max_steps}: must be >= 1")
        need(self.batch_size >= 1, f"batch_size={self.batch_size}: must be >= 1")
        need(self.grad_accum >= 1, f"grad_accum={self.grad_accum}: must be >= 1")
        need(self.max_seq_len >= 8, f"max_seq_len={self.max_seq_len}: must be >= 8 tokens")
        need(self.conversation_extension >= 1, "conversation_extension: must be >= 1")
        need(0.0 <= self.eval_split < 1.0, f"eval_split={self.eval_split}: a fraction in [0, 1), e.g. 0.1")
        for name in ("eval_every", "log_every", "save_every"):
            need(getattr(self, name) >= 1, f"{name}={getattr(self, name)}: must be >= 1")
        need(self.keep_checkpoints >= 1, "keep_checkpoints: must be >= 1")
        need(self.backend in BACKENDS, f"backend='{self.backend}': use one of {', '.join(BACKENDS)}")
        need(self.dtype in DTYPES, f"dtype='{self.dtype}': use one of {', '.join(DTYPES)}")
        need(self.device in DEVICES, f"device='{self.device}': use one of {', '.join(DEVICES)}")
        need(self.distributed in DISTRIBUTED,
             f"distributed='{self.distributed}': use one of {', '.join(DISTRIBUTED)}")
        if problems:
            raise ConfigError("Invalid training settings: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain values (what `config.toml` holds)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some settings changed (not validated)."""
        return dataclasses.replace(self, **changes)


def config_from_mapping(values: dict[str, Any], *, source: str = "settings") -> RunConfig:
    """Build a RunConfig from a mapping (TOML keys or CLI names; dashes allowed).

    Raises ConfigError for unknown keys or values of the wrong type, naming `source`.
    """
    known = {f.name: f for f in dataclasses.fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in known:
            close = [name for name in known if key in name or name in key]
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{source}: unknown setting '{raw_key}'.{hint}")
        kwargs[key] = _coerce(key, value, known[key].type, source)
    return RunConfig(**kwargs)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    text = str(annotation)
    if value is None:
        return None
    if key == "target_modules":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: target_modules must be a list of module names.")
        return value
    try:
        if text.startswith("bool"):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if text.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if text.startswith("float"):
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: setting '{key}' expects {text}, got {value!r}.") from None
    return value


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a plain mapping; ConfigError names the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found.")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error}).") from None
    # Allow the settings at the top level or under a [train] table.
    return dict(values.get("train", values))


def dump_toml(values: dict[str, Any]) -> str:
    """Write a flat mapping as TOML (None values are left out: they mean 'default')."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'
