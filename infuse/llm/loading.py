"""`load_chat_model`: one call that gives a `ChatModel`, local or served."""

from __future__ import annotations

import json
from pathlib import Path

from infuse.errors import ModelNotFoundError
from infuse.llm.base import ChatModel
from infuse.models import DEFAULT_MODEL, resolve_chat_model


def load_chat_model(
    spec: str = DEFAULT_MODEL,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    adapter: str | None = None,
    device: str | None = None,
    dtype=None,
    timeout_s: float = 120.0,
) -> ChatModel:
    """Return a chat model: an OpenAI-compatible client when `base_url` is given, else a local one.

    `spec` is the served model's name with `base_url`; otherwise a packaged name (`smollm2`), a
    saved transformers folder, a .gguf file, or a peft adapter folder (its base model is read
    from `adapter_config.json`). `adapter` loads a peft adapter folder on top of the model.
    Raises ModelNotFoundError (never downloads).
    """
    if base_url:
        from infuse.llm.openai_compat import OpenAIChatModel

        return OpenAIChatModel(base_url, spec, api_key=api_key, timeout_s=timeout_s)
    return load_local_chat_model(spec, adapter=adapter, device=device, dtype=dtype)


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
