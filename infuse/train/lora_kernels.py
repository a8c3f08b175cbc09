"""LoRA projections and the LoRA SwiGLU MLP as custom autograd Functions (save only inputs).

For one frozen linear W with a LoRA pair (A, B) and scale s:

    y  = x W^T + b + s (x A^T) B^T
    dx = g W + s (g B) A        dA = s (g B)^T x        dB = s g^T (x A^T)

peft computes the same thing with modules: it casts x to the adapters' float32 dtype, keeps
that copy for the backward pass and lets autograd store every intermediate. Here:

- projections that read the same input (q/k/v, gate/up) are one product: their frozen weights
  sit back to back in one tensor (`fuse_frozen_weights`, done once when the fast path is
  installed), their LoRAs share one skinny `x @ [A1; A2; ...]^T` product and one block-diagonal
  `B` product, and the backward pass takes one `dx`, one `dA` and one `dB` product per group;
- 4-bit (bitsandbytes NF4, QLoRA) frozen weights are dequantized into a bf16 buffer right before
  each product, in the forward pass and again in the backward pass, and freed after it: no dense
  copy of a 4-bit weight is ever kept (the memory stays that of the 4-bit model);
- only x, the small `x A^T` products and, for the MLP, the gate/up outputs are saved; the
  SwiGLU product is recomputed in the backward pass and its gradient written in place;
- no gradient is computed for the frozen weights, everything runs in the activations' dtype.

Plain PyTorch: runs on CPU too (tests compare it with peft). On CUDA the SwiGLU steps go
through `torch.compile` (Inductor writes the fused Triton kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

_COMPILED: dict[str, object] = {}


@dataclass
class Projection:
    """One linear layer as the fast path sees it: frozen weight/bias and optional LoRA pair."""

    weight: object  # [out, in], frozen: a tensor or an NF4Weight
    bias: object | None
    lora_a: object | None  # [r, in] trainable
    lora_b: object | None  # [out, r] trainable
    scale: float = 1.0

    def tensors(self) -> list:
        """The four tensors in the order the autograd Functions take them."""
        return [self.weight, self.bias, self.lora_a, self.lora_b]


@dataclass
class NF4Weight:
    """A frozen bitsandbytes 4-bit NF4 weight (QLoRA): the packed bytes and their quant state."""

    packed: object  # bitsandbytes Params4bit (uint8)
    quant_state: object  # bitsandbytes QuantState: shape [out, in], dtype, absmax (maybe nested)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.quant_state.shape)


def _frozen_weight(linear):
    """The frozen weight of a plain nn.Linear or a bitsandbytes NF4 Linear4bit; None otherwise."""
    import torch

    if type(linear) is torch.nn.Linear:
        return None if linear.weight.requires_grad else linear.weight
    if type(linear).__name__ == "Linear4bit" and type(linear).__module__.startswith("bitsandbytes"):
        state = getattr(linear.weight, "quant_state", None)
        if state is None or getattr(state, "quant_type", None) != "nf4" or linear.weight.requires_grad:
            return None
        return NF4Weight(linear.weight, state)
    return None


def projection_of(module) -> Projection | None:
    """A `Projection` view of a frozen nn.Linear or NF4 Linear4bit, bare or under a vanilla peft
    LoRA layer; None if neither.

    None for anything the fast path must not touch: DoRA or other variants, several active
    adapters, merged or disabled adapters, LoRA dropout > 0, trainable base weights, 8-bit or FP4.
    """
    import torch

    if module is None:
        return None
    weight = _frozen_weight(module)
    if weight is not None:
        return Projection(weight, module.bias, None, None)
    base = getattr(module, "base_layer", None)
    weight = _frozen_weight(base) if base is not None else None
    if weight is None:
        return None
    if getattr(module, "disable_adapters", False) or getattr(module, "merged", False):
        return None
    active = [name for name in getattr(module, "active_adapters", []) if name in module.lora_A]
    if len(active) != 1 or getattr(module, "fan_in_fan_out", False):
        return None
    name = active[0]
    if name in getattr(module, "lora_variant", {}) or getattr(module, "use_dora", {}).get(name):
        return None
    if not isinstance(module.lora_dropout[name], torch.nn.Identity):
        return None
    lora_a, lora_b = module.lora_A[name], module.lora_B[name]
    if lora_a.bias is not None or lora_b.bias is not None:
        return None
    return Projection(weight, base.bias, lora_a.weight, lora_b.weight, float(module.scaling[name]))


# ---------------------------------------------------------------- elementwise steps
def _swiglu(e, u):
    import torch

    return torch.nn.functional.silu(e) * u


def _swiglu_backward_(e, u, dh):
    """In place: e <- d/de, u <- d/du, dh <- silu(e) * u (the recomputed product)."""
    import torch

    compute = torch.promote_types(e.dtype, torch.float32)  # bf16 -> float32, float64 stays
    ef, uf, gf = e.to(compute), u.to(compute), dh.to(compute)
    sig = torch.sigmoid(ef)
    silu = ef * sig
    product = silu * uf
    grad_u = gf * silu
    grad_e = gf * uf * sig * (1.0 + ef * (1.0 - sig))
    e.copy_(grad_e)
    u.copy_(grad_u)
    dh.copy_(product)


def _step(name: str, device_type: str):
    """The eager function on CPU; its `torch.compile`d twin on CUDA (built once)."""
    function = {"swiglu": _swiglu, "swiglu_backward_": _swiglu_backward_}[name]
    if device_type != "cuda":
        return function
    if name not in _COMPILED:
        import torch

        _COMPILED[name] = torch.compile(function, dynamic=True)
    return _COMPILED[name]


# ---------------------------------------------------------------- frozen weights
def is_nf4(weight) -> bool:
    return isinstance(weight, NF4Weight)


def weight_shape(weight) -> tuple[int, int]:
    """[out, in] of a dense or NF4 frozen weight."""
    return tuple(weight.shape)


def _dequantize_into(weight: NF4Weight, out) -> None:
    """Write the dense weight into `out` ([out, in], contiguous) without keeping any other copy."""
    import bitsandbytes.functional as bnb_functional

    state = weight.quant_state
    if out.is_cuda and out.dtype == state.dtype:
        bnb_functional.dequantize_4bit(weight.packed, state, out=out)
    else:  # bitsandbytes' CPU backend has no `out=` variant; tests run float64 twins
        out.copy_(bnb_functional.dequantize_4bit(weight.packed, state))


def _adjacent_rows(weights: list, dtype):
    """The [sum out, in] view of dense weights that sit back to back in one tensor, else None.

    `fuse_frozen_weights` puts q/k/v (and gate/up) there, so a group is one matrix product.
    """
    import torch

    first = weights[0]
    if not all(isinstance(w, torch.Tensor) for w in weights) or first.dtype != dtype:
        return None
    if len(weights) == 1:
        return first
    columns, expected, rows = first.shape[1], first.data_ptr(), 0
    storage = first.untyped_storage().data_ptr()
    for w in weights:
        # One storage, not just adjacent addresses: the CUDA allocator often places separate
        # tensors back to back, and a view may not reach past its own storage.
        if (w.dtype != dtype or w.shape[1] != columns or not w.is_contiguous()
                or w.data_ptr() != expected or w.untyped_storage().data_ptr() != storage):
            return None
        expected += w.numel() * w.element_size()
        rows += w.shape[0]
    return first.as_strided((rows, columns), (columns, 1))


def _stacked_weight(weights: list, dtype, device):
    """The group's frozen weights as one dense [sum out, in] matrix in `dtype`, or None.

    A view when they are adjacent dense rows; for NF4 weights a fresh buffer each is dequantized
    into (freed by the caller after its product, so the allocator hands the same block to the
    next group: one dense group lives at a time, none is saved for the backward pass).
    """
    import torch

    view = _adjacent_rows(weights, dtype)
    if view is not None or not all(is_nf4(w) for w in weights):
        return view
    rows = sum(weight_shape(w)[0] for w in weights)
    out = torch.empty(rows, weight_shape(weights[0])[1], dtype=dtype, device=device)
    start = 0
    for w in weights:
        stop = start + weight_shape(w)[0]
        _dequantize_into(w, out[start:stop])
        start = stop
    return out


def _dense(weight, dtype, device):
    """One frozen weight as a dense matrix in `dtype` (dequantized for NF4)."""
    if is_nf4(weight):
        return _stacked_weight([weight], dtype, device)
    return weight if weight.dtype == dtype else weight.to(dtype)


def fuse_frozen_weights(projections: list[Projection]) -> bool:
    """Re-seat dense frozen weights of one group (q/k/v, gate/up) as row blocks of one tensor.

    The values and the modules' Parameters stay the same (each `.data` becomes a view into the
    fused tensor, the old storage is freed), so the group's product is one matrix product.
    Only for unsharded dense weights of one dtype and device; returns whether it fused.
    """
    import torch

    weights = [p.weight for p in projections]
    if len(weights) < 2 or not all(isinstance(w, torch.nn.Parameter) for w in weights):
        return False
    first = weights[0]
    if first.device.type == "meta" or any(
        w.dtype != first.dtype or w.device != first.device or w.dim() != 2
        or w.shape[1] != first.shape[1] or w.requires_grad for w in weights):
        return False
    if _adjacent_rows(weights, first.dtype) is not None:
        return True
    with torch.no_grad():
        fused = torch.cat([w.detach() for w in weights])
        start = 0
        for w in weights:
            stop = start + w.shape[0]
            w.data = fused[start:stop]
            start = stop
    return True


# ---------------------------------------------------------------- shared projection math
def _lora_stack(specs: list[tuple], dtype):
    """[A1; A2; ...] in the compute dtype, and each LoRA's row range in it (None: no LoRA)."""
    import torch

    blocks, ranges, start = [], [], 0
    for _w, _b, lora_a, _lb, _s in specs:
        if lora_a is None:
            ranges.append(None)
            continue
        blocks.append(lora_a.to(dtype))
        ranges.append((start, start + lora_a.shape[0]))
        start += lora_a.shape[0]
    return (torch.cat(blocks) if blocks else None), ranges


def _out_spans(specs: list[tuple]) -> list[tuple[int, int]]:
    spans, start = [], 0
    for spec in specs:
        stop = start + weight_shape(spec[0])[0]
        spans.append((start, stop))
        start = stop
    return spans


def _lora_block(specs, ranges, spans, dtype, device):
    """Block-diagonal [sum out, sum r] matrix of the scaled B's: x A^T -> every LoRA's output."""
    import torch

    block = torch.zeros(spans[-1][1], _ranges_total(ranges), dtype=dtype, device=device)
    for (_w, _b, _a, lora_b, scale), span, out in zip(specs, ranges, spans, strict=True):
        if span is not None:
            block[out[0] : out[1], span[0] : span[1]] = lora_b.to(dtype) * scale
    return block


def _ranges_total(ranges) -> int:
    return max((span[1] for span in ranges if span is not None), default=0)


def _side_by_side(tensors: list):
    """The [T, sum out] view of column blocks that sit side by side in one tensor, else None."""
    first = tensors[0]
    if len(tensors) == 1:
        return first
    stride, expected, columns = first.stride(), first.data_ptr(), 0
    storage = first.untyped_storage().data_ptr()
    for t in tensors:
        if (t.stride() != stride or stride[1] != 1 or t.dtype != first.dtype or t.data_ptr() != expected
                or t.untyped_storage().data_ptr() != storage):
            return None
        expected += t.shape[1] * t.element_size()
        columns += t.shape[1]
    return first.as_strided((first.shape[0], columns), stride)


def _project(x, specs: list[tuple]):
    """Every projection of x: returns ([outputs], x @ A_stack^T or None).

    One product for the whole group when its frozen weights stack (adjacent or NF4), and one
    more for all of its LoRAs (block-diagonal B); the outputs are column views of one tensor.
    """

    a_stack, ranges = _lora_stack(specs, x.dtype)
    xa = x @ a_stack.t() if a_stack is not None else None
    spans = _out_spans(specs)
    weight = _stacked_weight([spec[0] for spec in specs], x.dtype, x.device)
    if weight is not None:
        y = x @ weight.t()
        del weight
        if xa is not None:
            y.addmm_(xa, _lora_block(specs, ranges, spans, x.dtype, x.device).t())
        outputs = [y[:, a:b] for a, b in spans] if len(specs) > 1 else [y]
    else:
        outputs = []
        for (weight, _b, _la, lora_b, scale), span in zip(specs, ranges, strict=True):
            y = x @ _dense(weight, x.dtype, x.device).t()
            if span is not None:
                y.addmm_(xa[:, span[0] : span[1]], lora_b.to(x.dtype).t(), alpha=scale)
            outputs.append(y)
    for (_w, bias, _a, _lb, _s), y in zip(specs, outputs, strict=True):
        if bias is not None:
            y.add_(bias.to(y.dtype))
    return outputs, xa


def _project_backward(x, xa, specs: list[tuple], grads: list, need_dx: bool):
    """(dx or None, [dA or None, ...], [dB or None, ...]) for `_project` with output grads."""
    import torch

    a_stack, ranges = _lora_stack(specs, x.dtype)
    spans = _out_spans(specs)
    grad = _side_by_side(grads)
    if grad is None:
        grad = torch.cat(grads, dim=1)
    dx = None
    if need_dx:
        weight = _stacked_weight([spec[0] for spec in specs], x.dtype, x.device)
        if weight is not None:
            dx = grad @ weight
            del weight
        else:
            for (w, *_rest), (a, b) in zip(specs, spans, strict=True):
                part = grad[:, a:b]
                dense = _dense(w, x.dtype, x.device)
                dx = part @ dense if dx is None else dx.addmm_(part, dense)
    if a_stack is None:
        return dx, [None] * len(specs), [None] * len(specs)
    block = _lora_block(specs, ranges, spans, x.dtype, x.device)
    gb = grad @ block  # [T, sum r]: each LoRA's scaled g B
    stack_grad = gb.t() @ x  # dA, stacked
    if need_dx:
        dx.addmm_(gb, a_stack)
    outer = grad.t() @ xa  # [sum out, sum r]: dB blocks on its diagonal
    grad_a, grad_b = [], []
    for (_w, _b, lora_a, lora_b, scale), span, out in zip(specs, ranges, spans, strict=True):
        if span is None:
            grad_a.append(None)
            grad_b.append(None)
            continue
        grad_a.append(stack_grad[span[0] : span[1]].to(lora_a.dtype))
        grad_b.append((outer[out[0] : out[1], span[0] : span[1]] * scale).to(lora_b.dtype))
    return dx, grad_a, grad_b


def _specs(flat: tuple, scales: tuple) -> list[tuple]:
    return [(*flat[4 * i : 4 * i + 4], scales[i]) for i in range(len(scales))]


def _lora_grads(specs, grad_a, grad_b) -> list:
    """Gradients in the Function's argument order (None for frozen weights and biases)."""
    out = []
    for (_w, _b, lora_a, lora_b, _s), ga, gb in zip(specs, grad_a, grad_b, strict=True):
        out += [None, None, ga if lora_a is not None and lora_a.requires_grad else None,
                gb if lora_b is not None and lora_b.requires_grad else None]
    return out


def _save(ctx, items: list) -> None:
    """save_for_backward for the tensors; NF4 weights (not tensors) ride on ctx as they are."""
    ctx.nf4 = {i: item for i, item in enumerate(items) if is_nf4(item)}
    ctx.save_for_backward(*[None if i in ctx.nf4 else item for i, item in enumerate(items)])


def _saved(ctx) -> list:
    return [ctx.nf4.get(i, item) for i, item in enumerate(ctx.saved_tensors)]


def _make_functions():
    import torch

    class LoRAProjections(torch.autograd.Function):
        """Several projections of one input (q/k/v, or a single o_proj) with their LoRA pairs."""

        @staticmethod
        def forward(ctx, x, scales, *flat):
            specs = _specs(flat, scales)
            outputs, xa = _project(x, specs)
            ctx.scales = scales
            _save(ctx, [x, xa, *flat])
            return tuple(outputs)

        @staticmethod
        def backward(ctx, *grads):
            x, xa, *flat = _saved(ctx)
            specs = _specs(tuple(flat), ctx.scales)
            grads = [g if g is not None else torch.zeros(x.shape[0], weight_shape(s[0])[0], dtype=x.dtype,
                                                         device=x.device) for g, s in zip(grads, specs, strict=True)]
            dx, grad_a, grad_b = _project_backward(x, xa, specs, grads, ctx.needs_input_grad[0])
            return (dx, None, *_lora_grads(specs, grad_a, grad_b))

    class LoRASwiGLU(torch.autograd.Function):
        """down(silu(gate(x)) * up(x)) with LoRA on any of the three projections."""

        @staticmethod
        def forward(ctx, x, scales, *flat):
            specs = _specs(flat, scales)
            (gate, up), xa = _project(x, specs[:2])
            product = _step("swiglu", x.device.type)(gate, up)
            (y,), ha = _project(product, specs[2:])
            ctx.scales = scales
            _save(ctx, [x, xa, gate, up, ha, *flat])
            return y

        @staticmethod
        def backward(ctx, grad):
            x, xa, gate, up, ha, *flat = _saved(ctx)
            specs = _specs(tuple(flat), ctx.scales)
            grad = grad.contiguous()
            weight_d, _bd, a_d, b_d, scale_d = specs[2]
            dh = grad @ _dense(weight_d, grad.dtype, grad.device)
            gb_d = None
            if a_d is not None:
                gb_d = (grad @ b_d.to(grad.dtype)).mul_(scale_d)
                dh.addmm_(gb_d, a_d.to(grad.dtype))
            # gate <- d/d(gate), up <- d/d(up), dh <- silu(gate) * up (the recomputed product):
            # gate and up sit side by side, so their gradient is one [T, 2 x intermediate] tensor
            _step("swiglu_backward_", x.device.type)(gate, up, dh)
            product = dh
            grad_a_d = grad_b_d = None
            if a_d is not None:
                grad_a_d = (gb_d.t() @ product).to(a_d.dtype)
                grad_b_d = (grad.t() @ ha).mul_(scale_d).to(b_d.dtype)
            dx, grad_a, grad_b = _project_backward(x, xa, specs[:2], [gate, up], ctx.needs_input_grad[0])
            return (dx, None, *_lora_grads(specs, grad_a + [grad_a_d], grad_b + [grad_b_d]))

    return LoRAProjections, LoRASwiGLU


class _Functions:
    """The autograd Functions, built on first use so importing this module never imports torch."""

    cache: tuple | None = None

    @classmethod
    def get(cls) -> tuple:
        if cls.cache is None:
            cls.cache = _make_functions()
        return cls.cache


def lora_projections(x, projections: list[Projection]) -> tuple:
    """Each projection of `x` ([tokens, in]) with its LoRA, as one autograd node."""
    flat = [t for p in projections for t in p.tensors()]
    scales = tuple(p.scale for p in projections)
    return _Functions.get()[0].apply(x, scales, *flat)


def lora_swiglu(x, gate: Projection, up: Projection, down: Projection):
    """The gated MLP `down(silu(gate(x)) * up(x))` of `x` ([tokens, hidden]) as one autograd node."""
    flat = gate.tensors() + up.tensors() + down.tensors()
    return _Functions.get()[1].apply(x, (gate.scale, up.scale, down.scale), *flat)
