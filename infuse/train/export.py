"""Export a run to where people run models: the peft adapter, merged weights, or GGUF + Modelfile.

    adapter  the peft folder (adapter_model.safetensors + adapter_config.json) + template
    merged   base + adapter merged into one 16-bit safetensors model folder (+ tokenizer)
    gguf     a Llama GGUF (f16 | q8_0 | q4_k_m) and an Ollama Modelfile beside it
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from infuse.errors import ConfigError
from infuse.files import check_writable_folder
from infuse.train.runs import CONFIG_FILE, TEMPLATE_FILE, read_run_config, run_template

FORMATS = ("adapter", "merged", "gguf")
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json", CONFIG_FILE, TEMPLATE_FILE,
                 "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class ExportResult:
    """Where the export went and what it holds."""

    format: str
    path: Path
    files: list[str]
    warnings: list[str] = field(default_factory=list)


def export_run(run_dir: str | Path, output: str | Path, *, format: str = "adapter",
               quant: str = "f16", dtype: str = "bf16") -> ExportResult:
    """Export run `run_dir` into folder `output` in `format`; returns what was written.

    Raises ConfigError for an unknown format/quant/dtype or an output folder that is not
    empty, ModelNotFoundError when `run_dir` is not a finished run.
    """
    if format not in FORMATS:
        raise ConfigError(f"format='{format}': use one of {', '.join(FORMATS)}.")
    if dtype not in ("bf16", "fp16", "fp32"):
        raise ConfigError(f"dtype='{dtype}': merged weights are bf16, fp16 or fp32.")
    run_dir, output = Path(run_dir), Path(output)
    read_run_config(run_dir)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"{output} exists and is not empty (or not a folder); give a new folder for the export.")
    check_writable_folder(output.parent, setting="--output")
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        warnings: list[str] = []
        if format == "adapter":
            for name in ADAPTER_FILES:
                if (run_dir / name).exists():
                    shutil.copy2(run_dir / name, staging / name)
        elif format == "merged":
            model, tokenizer = merged_model(run_dir, dtype=dtype)
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
        else:
            warnings += _export_gguf(run_dir, staging, quant)
        if output.exists():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(format=format, path=output, files=sorted(p.name for p in output.iterdir()),
                        warnings=warnings)


def merged_model(run_dir: str | Path, *, dtype: str = "fp32"):
    """Base + the run's adapter merged into plain weights (CPU); returns (model, tokenizer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infuse.models import resolve_chat_model

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    base = AutoModelForCausalLM.from_pretrained(
        resolve_chat_model(config.model), dtype=torch.float32, local_files_only=True
    )
    merged = PeftModel.from_pretrained(base, str(run_dir)).merge_and_unload()
    merged = merged.to({"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype])
    merged.config.use_cache = True
    tokenizer = AutoTokenizer.from_pretrained(run_dir, local_files_only=True)
    tokenizer.chat_template = run_template(run_dir)
    return merged.eval(), tokenizer


def _export_gguf(run_dir: Path, staging: Path, quant: str) -> list[str]:
    from infuse.train.gguf_file import QUANTS, write_gguf
    from infuse.train.modelfile import render_modelfile

    if quant not in QUANTS:
        raise ConfigError(f"quant='{quant}': use one of {', '.join(QUANTS)}.")
    model, tokenizer = merged_model(run_dir, dtype="fp32")
    gguf_name = f"{run_dir.resolve().name}.{quant}.gguf"
    write_gguf(model, tokenizer, staging / gguf_name, quant=quant, name=run_dir.resolve().name)
    text, warning = render_modelfile(gguf_name, tokenizer.chat_template, eos_token=tokenizer.eos_token)
    (staging / "Modelfile").write_text(text, encoding="utf-8")
    return [warning] if warning else []
