"""Write a merged Llama-architecture model as a GGUF file (llama.cpp, Ollama, LM Studio).

Written with the `gguf` package: tensor names mapped to GGUF's, the query/key rows reordered
to GGUF's rotary layout, the byte-level BPE tokenizer (tokens, types, merges, special ids)
and the chat template as metadata. Weights as f16 or q8_0 (norms stay f32); q4_k_m goes
through llama.cpp's own quantiser when llama-cpp-python is installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from infuse.errors import ConfigError

QUANTS = ("f16", "q8_0", "q4_k_m")
SUPPORTED_ARCHITECTURES = ("llama",)

_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_TOP_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def gguf_tensor_name(hf_name: str) -> str:
    """GGUF name of a Hugging Face Llama tensor; ConfigError for anything unexpected."""
    if hf_name in _TOP_NAMES:
        return _TOP_NAMES[hf_name]
    parts = hf_name.split(".")
    if len(parts) > 3 and parts[0] == "model" and parts[1] == "layers":
        rest = ".".join(parts[3:])
        if rest in _LAYER_NAMES:
            return f"blk.{parts[2]}.{_LAYER_NAMES[rest]}"
    raise ConfigError(f"GGUF export: tensor '{hf_name}' has no Llama GGUF name (is this a Llama model?).")


def to_rotary_interleaved(weight, n_heads: int):
    """Reorder q/k projection rows from HF's half-split rotary layout to GGUF's interleaved one."""
    out_features, in_features = weight.shape
    head_dim = out_features // n_heads
    return (
        weight.reshape(n_heads, 2, head_dim // 2, in_features)
        .swapaxes(1, 2)
        .reshape(out_features, in_features)
    )


def _tokenizer_pre(tokenizer) -> str:
    vocab = tokenizer.get_vocab()
    if "<|begin_of_text|>" in vocab:
        return "llama-bpe"
    if "<|im_start|>" in vocab and len(vocab) == 49152:
        return "smollm"
    return "default"


def tokenizer_metadata(tokenizer, vocab_size: int) -> dict:
    """Tokens, their types, merges and special ids of a byte-level BPE tokenizer."""
    from gguf import TokenType

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model", {})
    if model.get("type") != "BPE":
        raise ConfigError(
            f"GGUF export supports byte-level BPE tokenizers (Llama 3, SmolLM, GPT-2 style); this "
            f"tokenizer is {model.get('type')}. Export --format merged and convert with llama.cpp."
        )
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {token.content: token.special for token in tokenizer.added_tokens_decoder.values()}
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
        else:
            tokens.append(token)
            if token in added:
                types.append(TokenType.CONTROL if added[token] else TokenType.USER_DEFINED)
            else:
                types.append(TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges, "pre": _tokenizer_pre(tokenizer)}


def write_gguf(model, tokenizer, path: Path, *, quant: str = "f16", name: str = "infuse") -> Path:
    """Write `model` (a merged LlamaForCausalLM) and `tokenizer` to GGUF file `path`."""
    if quant not in QUANTS:
        raise ConfigError(f"quant='{quant}': use one of {', '.join(QUANTS)}.")
    config = model.config
    if config.model_type not in SUPPORTED_ARCHITECTURES:
        raise ConfigError(
            f"GGUF export writes the Llama architecture; this model is '{config.model_type}'. "
            "Export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py."
        )
    if quant == "q4_k_m":
        return _quantize_with_llama_cpp(model, tokenizer, path, name=name)
    _write(model, tokenizer, path, quant=quant, name=name)
    return path


def _write(model, tokenizer, path: Path, *, quant: str, name: str) -> None:
    import gguf
    import numpy as np
    import torch

    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(temp), "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    file_type = gguf.LlamaFileType.MOSTLY_F16 if quant == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(int(file_type))
    meta = tokenizer_metadata(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(meta["pre"])
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    writer.add_token_merges(meta["merges"])
    for setter, value in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                          (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if value is not None:
            setter(int(value))
    writer.add_add_bos_token(False)  # chat templates write any BOS themselves
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)

    state = model.state_dict()
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for hf_name, tensor in state.items():
        if "rotary_emb" in hf_name:
            continue
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = to_rotary_interleaved(data, config.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            data = to_rotary_interleaved(data, config.num_key_value_heads)
        gguf_name = gguf_tensor_name(hf_name)
        if data.ndim == 1:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        elif quant == "q8_0" and data.shape[-1] % 32 == 0:
            packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gguf_name, packed, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(gguf_name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(temp, path)


def _rope_theta(config) -> float:
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        parameters = getattr(config, "rope_parameters", None) or {}
        theta = parameters.get("rope_theta", 10000.0)
    return theta


def _quantize_with_llama_cpp(model, tokenizer, path: Path, *, name: str) -> Path:
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(
            "q4_k_m needs llama.cpp's quantiser: `pip install llama-cpp-python`, or export "
            "--quant q8_0 / f16 (written without it)."
        ) from None
    staging = path.with_name(f".{path.stem}.f16.gguf")
    _write(model, tokenizer, staging, quant="f16", name=name)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)
    temp = path.with_name(f".{path.name}.tmp")
    status = llama_cpp.llama_model_quantize(str(staging).encode(), str(temp).encode(), params)
    staging.unlink(missing_ok=True)
    if status != 0:
        temp.unlink(missing_ok=True)
        raise ConfigError(f"llama.cpp could not quantise {path.name} to q4_k_m (status {status}).")
    os.replace(temp, path)
    return path
