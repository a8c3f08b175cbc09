"""Load the base model, choose device and dtype, and put LoRA adapters on it (peft format).

One adapter format for every backend: whatever trains it, the run folder holds a peft
`adapter_model.safetensors` + `adapter_config.json` that `peft.PeftModel.from_pretrained`
loads. Checks that need the model (target module names, 4-bit support) raise ConfigError
here, before the first training step.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from infuse.errors import ConfigError
from infuse.train.config import RunConfig


@dataclass
class Placement:
    """Where the run computes and in which precision."""

    device: str
    dtype_name: str  # bf16 | fp16 | fp32
    backend: str  # hf | unsloth
    fused_kernels: bool

    @property
    def dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype_name]


def choose_placement(config: RunConfig) -> Placement:
    """Resolve device, dtype, backend and kernels from the config and the hardware.

    Raises ConfigError when the hardware cannot do what was asked (CUDA, bf16, 4-bit, Unsloth).
    """
    import torch

    has_cuda = torch.cuda.is_available()
    device = config.device if config.device != "auto" else ("cuda" if has_cuda else "cpu")
    if device == "cuda" and not has_cuda:
        raise ConfigError("device='cuda' but no CUDA GPU is visible; use --device cpu or auto.")
    if config.dtype == "auto":
        bf16_ok = device == "cuda" and torch.cuda.is_bf16_supported()
        dtype_name = "bf16" if bf16_ok else "fp32"
    else:
        dtype_name = config.dtype
    if dtype_name == "fp16" and device == "cpu":
        raise ConfigError("dtype='fp16' is not supported on CPU; use fp32 (or bf16).")
    if config.load_in_4bit:
        if device != "cuda":
            raise ConfigError("load_in_4bit (QLoRA) needs a CUDA GPU; drop --load-in-4bit on this machine.")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("load_in_4bit (QLoRA) needs bitsandbytes: `pip install bitsandbytes`.")
    backend = config.backend
    if backend == "unsloth":
        if device != "cuda":
            raise ConfigError("backend='unsloth' needs a CUDA GPU; use --backend hf (or auto).")
        if importlib.util.find_spec("unsloth") is None:
            raise ConfigError("backend='unsloth' but unsloth is not installed: `pip install unsloth`.")
    elif backend == "auto":
        backend = "hf"  # our own loop; on CUDA it gets our fused kernels
    fused = config.fused_kernels and device == "cuda"
    return Placement(device=device, dtype_name=dtype_name, backend=backend, fused_kernels=fused)


def load_tokenizer_for(model_path: Path):
    """The tokenizer saved beside the model; pad token falls back to eos."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def linear_module_names(model) -> list[str]:
    """Short names of the linear layers inside the decoder blocks (q_proj, up_proj, ...)."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in f".{full_name}":
            names.add(full_name.rsplit(".", 1)[-1])
        elif type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(full_name.rsplit(".", 1)[-1])
    return sorted(names)


def check_target_modules(config: RunConfig, model) -> list[str]:
    """The target modules that exist in `model`; ConfigError names any that do not."""
    available = linear_module_names(model)
    head = {"lm_head"} if hasattr(model, "lm_head") else set()
    unknown = [name for name in config.target_modules if name not in available and name not in head]
    if unknown:
        raise ConfigError(
            f"target_modules: {', '.join(unknown)} not found in {config.model}. This model's linear "
            f"layers are: {', '.join(available)}."
        )
    return list(config.target_modules)


def load_base_model(config: RunConfig, model_path: Path, placement: Placement):
    """Load the frozen base model in the run's dtype on the run's device."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": placement.dtype, "local_files_only": True}
    if config.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=placement.dtype,
        )
        kwargs["device_map"] = {"": 0}
    if placement.device == "cuda":
        kwargs["attn_implementation"] = "sdpa"
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if not config.load_in_4bit:
        model.to(placement.device)
    model.config.use_cache = False
    return model


def add_lora(config: RunConfig, model, *, gradient_checkpointing: bool | None = None):
    """Wrap `model` in peft LoRA adapters as configured; returns the PeftModel (adapters fp32)."""
    from peft import LoraConfig, get_peft_model

    targets = check_target_modules(config, model)
    if config.load_in_4bit:
        # Not peft's prepare_model_for_kbit_training: it upcasts every weight left unquantized to
        # float32 (embeddings and head: 2 GiB each at 8B), which triples a QLoRA run's memory;
        # RMSNorm and the loss already compute in float32. Freezing is all the base needs.
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        use_rslora=config.use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    checkpointing = config.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    if checkpointing:
        peft_model.get_base_model().gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return peft_model


def load_unsloth_lora(config: RunConfig, model_path: Path, placement: Placement):
    """Unsloth's patched model with LoRA, same settings (only when backend='unsloth')."""
    from unsloth import FastLanguageModel  # noqa: I001  (must come before transformers' use)

    model, tokenizer = FastLanguageModel.from_pretrained(
        str(model_path), max_seq_length=config.max_seq_len, dtype=placement.dtype,
        load_in_4bit=config.load_in_4bit, local_files_only=True,
    )
    check_target_modules(config, model)
    model = FastLanguageModel.get_peft_model(
        model, r=config.lora_r, lora_alpha=config.alpha, lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules), use_rslora=config.use_rslora, bias="none",
        use_gradient_checkpointing="unsloth" if config.gradient_checkpointing else False,
        random_state=config.seed,
    )
    return model, tokenizer


def loss_sum(peft_model, batch):
    """Forward one micro-batch; return (summed token loss, trained token count).

    The decoder runs without its output head; the loss projects only trained positions
    (see `infuse.train.loss`), so no full-vocabulary logits tensor is ever built. When
    `infuse.train.fast_decoder` was installed on the model, its own forward runs instead.
    """
    from infuse.train.fast_decoder import decoder_states, installed
    from infuse.train.loss import linear_cross_entropy_sum

    inner = peft_model.get_base_model()
    if installed(peft_model) is not None:  # infuse's own decoder forward (CUDA fast path)
        states = decoder_states(peft_model, batch)
        if states is not None:
            hidden, targets = states
            return linear_cross_entropy_sum(hidden, inner.get_output_embeddings().weight, targets)
    decoder = inner.get_decoder()
    head = inner.get_output_embeddings()
    outputs = decoder(
        input_ids=batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        position_ids=batch.get("position_ids"),
        use_cache=False,
    )
    hidden = outputs[0]
    return linear_cross_entropy_sum(hidden, head.weight, batch["targets"])
