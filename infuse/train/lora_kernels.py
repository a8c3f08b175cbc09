"""LoRA projections and the LoRA SwiGLU MLP as custom autograd Functions (save only inputs).

For one frozen linear W with a LoRA pair (A, B) and scale s:

    y  = x W^T + b + s (x A^T) B^T
    dx = g W + s (g B) A        dA = s (g B)^T x        dB = s g^T (x A^T)

peft computes the same thing with modules: it casts x to the adapters' float32 dtype, keeps
that copy for the backward pass and lets autograd store every intermediate. Here:

- projections that read the same input (q/k/v, gate/up) share one skinny `x @ [A1; A2; ...]^T`
  product and one `dA` product; `dx` is accumulated with in-place `addmm_` (no extra adds);
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

    weight: object  # [out, in], frozen
    bias: object | None
    lora_a: object | None  # [r, in] trainable
    lora_b: object | None  # [out, r] trainable
    scale: float = 1.0

    def tensors(self) -> list:
        """The four tensors in the order the autograd Functions take them."""
        return [self.weight, self.bias, self.lora_a, self.lora_b]


def projection_of(module) -> Projection | None:
    """A `Projection` view of a frozen nn.Linear or a vanilla peft LoRA Linear; None if neither.

    None for anything the fast path must not touch: DoRA or other variants, several active
    adapters, merged or disabled adapters, LoRA dropout > 0, trainable base weights, 4-bit layers.
    """
    import torch

    if isinstance(module, torch.nn.Linear) and type(module) is torch.nn.Linear:
        if module.weight.requires_grad:
            return None
        return Projection(module.weight, module.bias, None, None)
    base = getattr(module, "base_layer", None)
    if base is None or type(base) is not torch.nn.Linear or base.weight.requires_grad:
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
    return Projection(base.weight, base.bias, lora_a.weight, lora_b.weight, float(module.scaling[name]))


# ---------------------------------------------------------------- elementwise steps
def _swiglu(e, u):
    import torch

    return torch.nn.functional.silu(e) * u


def _swiglu_backward_(e, u, dh):
    """In place: e <- silu(e) * u (recomputed product), u <- d/du, dh <- d/de."""
    import torch

    compute = torch.promote_types(e.dtype, torch.float32)  # bf16 -> float32, float64 stays
    ef, uf, gf = e.to(compute), u.to(compute), dh.to(compute)
    sig = torch.sigmoid(ef)
    silu = ef * sig
    product = silu * uf
    grad_u = gf * silu
    grad_e = gf * uf * sig * (1.0 + ef * (1.0 - sig))
    e.copy_(product)
    u.copy_(grad_u)
    dh.copy_(grad_e)


def _step(name: str, device_type: str):
    """The eager function on CPU; its `torch.compile`d twin on CUDA (built once)."""
    function = {"swiglu": _swiglu, "swiglu_backward_": _swiglu_backward_}[name]
    if device_type != "cuda":
        return function
    if name not in _COMPILED:
        import torch

        _COMPILED[name] = torch.compile(function, dynamic=True)
    return _COMPILED[name]


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


def _project(x, specs: list[tuple]):
    """Every projection of x: returns (outputs, x @ A_stack^T or None)."""
    import torch

    a_stack, ranges = _lora_stack(specs, x.dtype)
    xa = x @ a_stack.t() if a_stack is not None else None
    outputs = []
    for (weight, bias, _la, lora_b, scale), span in zip(specs, ranges, strict=True):
        y = torch.addmm(bias, x, weight.t()) if bias is not None else x @ weight.t()
        if span is not None:
            y.addmm_(xa[:, span[0] : span[1]], lora_b.to(x.dtype).t(), alpha=scale)
        outputs.append(y)
    return outputs, xa


def _project_backward(x, xa, specs: list[tuple], grads: list, need_dx: bool):
    """(dx or None, [dA or None, ...], [dB or None, ...]) for `_project` with output grads."""
    import torch

    a_stack, ranges = _lora_stack(specs, x.dtype)
    dx, scaled, grad_a, grad_b = None, [], [], []
    for (weight, _b, _lora_a, lora_b, scale), span, g in zip(specs, ranges, grads, strict=True):
        if need_dx:
            dx = g @ weight if dx is None else dx.addmm_(g, weight)
        if span is None:
            grad_b.append(None)
            continue
        b = lora_b.to(x.dtype)
        grad_b.append((g.t() @ xa[:, span[0] : span[1]]).mul_(scale).to(lora_b.dtype))
        scaled.append((g @ b).mul_(scale))
    if scaled:
        gb = torch.cat(scaled, dim=1) if len(scaled) > 1 else scaled[0]
        stack_grad = gb.t() @ x
        if need_dx:
            dx.addmm_(gb, a_stack)
        for (_w, _b, lora_a, _lb, _s), span in zip(specs, ranges, strict=True):
            grad_a.append(None if span is None else stack_grad[span[0] : span[1]].to(lora_a.dtype))
    else:
        grad_a = [None] * len(specs)
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


def _make_functions():
    import torch

    class LoRAProjections(torch.autograd.Function):
        """Several projections of one input (q/k/v, or a single o_proj) with their LoRA pairs."""

        @staticmethod
        def forward(ctx, x, scales, *flat):
            specs = _specs(flat, scales)
            outputs, xa = _project(x, specs)
            ctx.scales = scales
            ctx.save_for_backward(x, xa, *[t for t in flat])
            return tuple(outputs)

        @staticmethod
        def backward(ctx, *grads):
            x, xa, *flat = ctx.saved_tensors
            specs = _specs(tuple(flat), ctx.scales)
            grads = [g if g is not None else torch.zeros(x.shape[0], s[0].shape[0], dtype=x.dtype,
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
            ctx.save_for_backward(x, xa, gate, up, ha, *flat)
            return y

        @staticmethod
        def backward(ctx, grad):
            x, xa, gate, up, ha, *flat = ctx.saved_tensors
            specs = _specs(tuple(flat), ctx.scales)
            grad = grad.contiguous()
            weight_d, _bd, a_d, b_d, scale_d = specs[2]
            dh = grad @ weight_d
            gb_d = None
            if a_d is not None:
                gb_d = (grad @ b_d.to(grad.dtype)).mul_(scale_d)
                dh.addmm_(gb_d, a_d.to(grad.dtype))
            # gate <- silu(gate) * up (the product), up <- d/d(up), dh <- d/d(gate)
            _step("swiglu_backward_", x.device.type)(gate, up, dh)
            product = gate
            grad_a_d = grad_b_d = None
            if a_d is not None:
                grad_a_d = (gb_d.t() @ product).to(a_d.dtype)
                grad_b_d = (grad.t() @ ha).mul_(scale_d).to(b_d.dtype)
            dx, grad_a, grad_b = _project_backward(x, xa, specs[:2], [dh, up], ctx.needs_input_grad[0])
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
