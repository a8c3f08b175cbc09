"""`load_chat_model`: one call that gives a `ChatModel`, local or served."""

from __future__ import annotations

import json
from pathlib import Path

from infuse.errors import ConfigError, ModelNotFoundError
from infuse.llm.base import ChatModel
from infuse.models import DEFAULT_MODEL, resolve_chat_model, resolve_gguf

BACKENDS = ("auto", "llamacpp", "transformers")


def load_chat_model(
    spec: str = DEFAULT_MODEL,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    adapter: str | None = None,
    device: str | None = None,
    dtype=None,
    timeout_s: float | None = None,
    backend: str = "auto",
) -> ChatModel:
    """Return a chat model: an OpenAI-compatible client when `base_url` is given, else a local one.

    `spec` is the served model's name with `base_url`; otherwise a packaged name (`smollm2`), a
    saved transformers folder, a .gguf file, or a peft adapter folder (its base model is read
    from `adapter_config.json`). `adapter` loads a peft adapter folder on top of the model.
    `backend` "auto" runs a GGUF model (the packaged one included) with llama.cpp when
    llama-cpp-python is installed and no adapter or GPU is asked for, else with transformers;
    "llamacpp" or "transformers" insists. Raises ModelNotFoundError (never downloads).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: choose one of {', '.join(BACKENDS)}.")
    if base_url:
        from infuse.llm.openai_compat import DEFAULT_TIMEOUT_S, OpenAIChatModel

        return OpenAIChatModel(base_url, spec, api_key=api_key,
                               timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)
    if backend != "transformers":
        gguf = resolve_gguf(spec)
        if backend == "llamacpp" and (gguf is None or adapter):
            raise ConfigError(
                f"backend='llamacpp' runs a GGUF file without an adapter; '{spec}' "
                f"{'has an adapter' if adapter else 'is not one'}. Use backend='transformers'."
            )
        if gguf is not None and adapter is None and _llamacpp_wanted(backend, device):
            from infuse.llm.llamacpp import LlamaCppChatModel

            return LlamaCppChatModel(gguf, name=spec)
    return load_local_chat_model(spec, adapter=adapter, device=device, dtype=dtype)


def _llamacpp_wanted(backend: str, device: str | None) -> bool:
    if backend == "llamacpp":
        return True
    from infuse.llm.llamacpp import llama_cpp_available

    return llama_cpp_available() and (device is None or device == "cpu") and not _has_cuda()


def _has_cuda() -> bool:
    """True on a machine with a CUDA GPU (transformers is faster there than CPU llama.cpp).

    Looks for the NVIDIA driver first, so a CPU machine does not pay for importing torch.
    """
    import importlib.util
    import os

    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def load_local_chat_model(
    spec: str = DEFAULT_MODEL,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype=None,
):
    """Load a local transformers chat model (see `load_chat_model`); returns a `LocalChatModel`."""
    from transformers import AutoTokenizer

    from infuse.llm.local import LocalChatModel
    from infuse.models import load_causal_lm

    folder = resolve_chat_model(spec)
    if (
        adapter is None
        and (folder / "adapter_config.json").exists()
        and not (folder / "config.json").exists()
    ):
        adapter, spec = str(folder), _adapter_base(folder)
        folder = resolve_chat_model(spec)
    model = load_causal_lm(str(folder), dtype=dtype, device=device)
    tokenizer_folder = Path(adapter) if adapter and _has_tokenizer(Path(adapter)) else folder
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
    name = spec
    if adapter:
        model = _with_adapter(model, Path(adapter))
        name = f"{spec}+{Path(adapter).name}"
    return LocalChatModel(model, tokenizer, name=name)


def _adapter_base(adapter_dir: Path) -> str:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(
            f"{adapter_dir / 'adapter_config.json'} names no base_model_name_or_path: pass the base "
            "model as the model and the adapter folder as --adapter."
        )
    return base


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").exists()


def _with_adapter(model, adapter_dir: Path):
    if not (adapter_dir / "adapter_config.json").exists():
        raise ModelNotFoundError(
            f"Adapter folder {adapter_dir} has no adapter_config.json: give the folder a LoRA run "
            "saved (e.g. runs/NAME/adapter)."
        )
    from peft import PeftModel

    # Merged into the weights for inference: the same outputs, without the adapter's extra
    # matmuls on every token (decoding is ~1.5x faster on a CPU).
    adapted = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    return adapted.merge_and_unload().eval()
