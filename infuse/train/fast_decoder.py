"""infuse's own decoder forward for Llama-family models with LoRA: the fast training path.

`install_fast_decoder(model)` checks, layer by layer, that the model is a plain pre-norm
Llama-style decoder (RMSNorm, rotary q/k/v/o attention, SiLU-gated MLP; Llama, Mistral without
sliding window, Qwen2) whose linears are frozen nn.Linear or vanilla peft LoRA layers, and
records the plan on the model object. Nothing is patched: `decoder_states` then runs

    embed -> [RMSNorm -> LoRA QKV -> RoPE -> varlen flash attention -> LoRA O -> +residual
              -> RMSNorm -> LoRA SwiGLU MLP -> +residual] x layers -> RMSNorm

on the real tokens only (padding dropped, packed sequences kept apart by cu_seqlens), with
gradient checkpointing that offloads each layer's input to pinned CPU memory. A model it does
not recognise keeps the ordinary transformers + peft path.

Under DDP nothing changes (DDP only hooks the LoRA gradients). Under FSDP2 each decoder layer
is its own `fully_shard` unit whose weights exist whole only inside the unit's forward and
backward: there the fast layer runs *as the unit's forward* (`_through_unit`), the checkpoint
inside it, so FSDP gathers the shards before it, re-gathers them before its backward (where the
checkpoint recomputes the layer) and reduce-scatters the LoRA gradients after, as for any module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from infuse.train.lora_kernels import (
    Projection,
    fuse_frozen_weights,
    lora_projections,
    lora_swiglu,
    projection_of,
)

ATTRIBUTE = "_infuse_fast_decoder"
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
_COMPILED: dict[str, object] = {}


@dataclass
class FastLayer:
    """One decoder layer's pieces, as the fast path uses them."""

    input_norm: object
    post_norm: object
    qkv: list[Projection]
    out: Projection
    gate: Projection
    up: Projection
    down: Projection
    heads: int
    kv_heads: int
    head_dim: int
    scale: float


@dataclass
class FastDecoder:
    """The plan recorded on a model by `install_fast_decoder`."""

    layers: list[FastLayer]
    offload: bool = True
    notes: list[str] = field(default_factory=list)
    modules: list = field(default_factory=list)  # the decoder layer modules, in order


def _rms_norm(hidden, weight, eps: float):
    import torch

    variance = hidden.float().pow(2).mean(-1, keepdim=True)
    return weight * (hidden.float() * torch.rsqrt(variance + eps)).to(hidden.dtype)


def _rope(q, k, cos, sin):
    """Rotary embedding of q [T, H, D] and k [T, Hk, D] with cos/sin [T, D] (rotate-half form)."""
    import torch

    def rotate(x):
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    cos, sin = cos[:, None, :], sin[:, None, :]
    return (q * cos + rotate(q) * sin), (k * cos + rotate(k) * sin)


def _step(name: str, device_type: str):
    function = {"rms_norm": _rms_norm, "rope": _rope}[name]
    if device_type != "cuda":
        return function
    if name not in _COMPILED:
        import torch

        _COMPILED[name] = torch.compile(function, dynamic=True)
    return _COMPILED[name]


def why_unsupported(model) -> str | None:
    """Why the fast path cannot run this model (None when it can)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(inner, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_TYPES:
        return f"model type {model_type!r} (fast path: {', '.join(SUPPORTED_TYPES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    if getattr(config, "attention_dropout", 0.0):
        return "attention dropout"
    decoder = inner.get_decoder()
    for name in ("embed_tokens", "rotary_emb", "norm", "layers"):
        if not hasattr(decoder, name):
            return f"decoder has no {name}"
    return None


def _plan_layer(layer) -> FastLayer | None:
    attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
    if attn is None or mlp is None or hasattr(attn, "q_norm"):
        return None
    projections = [projection_of(getattr(owner, name, None)) for owner, name in (
        (attn, "q_proj"), (attn, "k_proj"), (attn, "v_proj"), (attn, "o_proj"),
        (mlp, "gate_proj"), (mlp, "up_proj"), (mlp, "down_proj"))]
    if any(p is None for p in projections):
        return None
    for norm in (layer.input_layernorm, layer.post_attention_layernorm):
        if not hasattr(norm, "variance_epsilon") or not type(norm).__name__.endswith("RMSNorm"):
            return None
    head_dim = attn.head_dim
    heads = projections[0].weight.shape[0] // head_dim
    kv_heads = projections[1].weight.shape[0] // head_dim
    return FastLayer(layer.input_layernorm, layer.post_attention_layernorm, projections[:3],
                     projections[3], *projections[4:], heads=heads, kv_heads=kv_heads,
                     head_dim=head_dim, scale=float(attn.scaling))


def install_fast_decoder(model, *, offload: bool = True, fuse_weights: bool = True) -> FastDecoder | None:
    """Record the fast-path plan on `model` (a PeftModel or plain model); None if unsupported.

    With `fuse_weights`, each layer's frozen q/k/v and gate/up weights (dense, on CUDA, not
    sharded) are re-seated as row blocks of one tensor each, so each group is one product; the
    values and the modules' Parameters stay the same (`lora_kernels.fuse_frozen_weights`).
    """
    if why_unsupported(model) is not None:
        return None
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = [_plan_layer(layer) for layer in inner.get_decoder().layers]
    if not layers or any(layer is None for layer in layers):
        return None
    plan = FastDecoder(layers=layers, offload=offload, modules=list(inner.get_decoder().layers))
    if fuse_weights:
        for layer in layers:
            for group in (layer.qkv, [layer.gate, layer.up]):
                on_gpu = all(getattr(p.weight, "is_cuda", False) for p in group)
                if on_gpu and not any(_is_sharded(module) for module in plan.modules[:1]):
                    fuse_frozen_weights(group)
    setattr(inner, ATTRIBUTE, plan)
    return plan


def installed(model) -> FastDecoder | None:
    """The fast-path plan recorded on `model`, if any."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, ATTRIBUTE, None)


def layer_forward(layer: FastLayer, hidden, cos, sin, layout):
    """One decoder layer on flat tokens: hidden [T, H] -> [T, H]."""
    from infuse.train.varlen_attention import causal_attention

    device_type = hidden.device.type
    norm = _step("rms_norm", device_type)
    tokens = hidden.shape[0]
    x = norm(hidden, layer.input_norm.weight, layer.input_norm.variance_epsilon)
    q, k, v = lora_projections(x, layer.qkv)
    q = q.view(tokens, layer.heads, layer.head_dim)
    k = k.view(tokens, layer.kv_heads, layer.head_dim)
    v = v.view(tokens, layer.kv_heads, layer.head_dim)
    q, k = _step("rope", device_type)(q, k, cos, sin)
    attended = causal_attention(q, k, v, layout, layer.scale)
    (out,) = lora_projections(attended.reshape(tokens, -1), [layer.out])
    hidden = hidden + out
    x = norm(hidden, layer.post_norm.weight, layer.post_norm.variance_epsilon)
    return hidden + lora_swiglu(x, layer.gate, layer.up, layer.down)


def decoder_states(model, batch):
    """Final hidden states of the real tokens ([T, H]) and their targets ([T]).

    batch: input_ids [B, S], targets [B, S], optional attention_mask or position_ids.
    Returns None when the batch's mask is not plain sequences (the caller falls back).
    """
    import torch

    from infuse.train.offload import OffloadStore, checkpointed
    from infuse.train.varlen_attention import layout_of

    plan = installed(model)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = inner.get_decoder()
    layout = layout_of(batch["input_ids"], batch.get("attention_mask"), batch.get("position_ids"))
    if plan is None or layout is None:
        return None
    ids = layout.take(batch["input_ids"])
    targets = layout.take(batch["targets"].to(ids.device))
    hidden = decoder.embed_tokens(ids)
    cos, sin = decoder.rotary_emb(hidden[None], layout.positions[None])
    cos, sin = cos[0].to(hidden.dtype), sin[0].to(hidden.dtype)
    flag = "is_activation_checkpointing" if hasattr(type(inner), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    checkpointing = torch.is_grad_enabled() and inner.training and bool(getattr(inner, flag, False))
    store = OffloadStore(hidden.device, offload=plan.offload) if checkpointing else None
    if checkpointing and not hidden.requires_grad:  # frozen embeddings: let grads reach layer 0
        hidden = hidden.detach().requires_grad_(True)
    count = len(plan.layers)
    for index, layer in enumerate(plan.layers):
        module = plan.modules[index] if plan.modules else None
        if _is_sharded(module):  # FSDP2: run inside the unit, on the weights it gathered
            def unit_forward(h, module=module, index=index):
                gathered = _plan_layer(module)

                def run(x):
                    return layer_forward(gathered, x, cos, sin, layout)

                return run(h) if store is None else checkpointed(run, h, store, index, last=index == count - 1)

            hidden = _through_unit(module, unit_forward, hidden)
            continue

        def run(h, layer=layer):
            return layer_forward(layer, h, cos, sin, layout)

        if store is None:
            hidden = run(hidden)
        else:
            hidden = checkpointed(run, hidden, store, index, last=index == count - 1)
    norm = decoder.norm
    hidden = _step("rms_norm", hidden.device.type)(hidden, norm.weight, norm.variance_epsilon)
    return hidden, targets


def _is_sharded(module) -> bool:
    """True when `module` is an FSDP2 unit (`fully_shard` was applied to it)."""
    if module is None:
        return False
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # a torch without FSDP2
        return False
    return isinstance(module, FSDPModule)


def _through_unit(module, forward, hidden):
    """Call the FSDP unit `module` with `forward` as its forward, so its hooks wrap our layer.

    FSDP2's hooks (gather before, re-gather before the backward, reduce-scatter after) sit on the
    module call, not on its forward method: an instance attribute replaces the forward for this
    one call and is removed again, so the module's own forward is untouched for anyone else.
    """
    module.forward = forward
    try:
        return module(hidden)
    finally:
        del module.forward
