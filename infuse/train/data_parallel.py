"""DDP or FSDP2 around the LoRA model, and its trained state gathered for saving or sharded for loading.

`wrap` returns a `TrainEngine`: the loop calls `engine.backward_step(micro_batches, ...)` once per
optimizer step, which runs `engine.loss_sum(batch)` for every micro-batch inside
`engine.accumulating(sync=...)` so gradients cross processes only on a step's last micro-batch.
The forward goes through one small module (`StepModule`) so DDP's and FSDP's hooks see it:
DDP prepares its gradient all-reduce there, FSDP gathers the root weights (embeddings, final
norm, output head) there.

Saved state is always the single-process format (full LoRA tensors, optimizer state keyed by
parameter index), whatever the process count: FSDP gathers it on save and shards it on load.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infuse.train.distributed import DistContext

_STEP_MODULE: list[type] = []


def _step_module_class() -> type:
    """The nn.Module whose forward is one micro-batch's loss (built on first use: torch is lazy)."""
    if not _STEP_MODULE:
        import torch

        from infuse.train.model import loss_sum

        class StepModule(torch.nn.Module):
            """Holds the peft model; forward(batch) -> (summed token loss, trained tokens)."""

            def __init__(self, peft_model) -> None:
                super().__init__()
                self.peft_model = peft_model

            def forward(self, batch: dict):
                return loss_sum(self.peft_model, batch)

        _STEP_MODULE.append(StepModule)
    return _STEP_MODULE[0]


@dataclass
class TrainEngine:
    """The LoRA model as this process trains it: plain, DDP-wrapped or FSDP-sharded."""

    model: Any  # the peft model (its LoRA parameters are DTensor shards under FSDP)
    context: DistContext
    runner: Any = None  # DDP(StepModule) | fully_shard(StepModule) | None (one process)

    def loss_sum(self, batch: dict):
        """(summed token loss, trained token count) of one micro-batch, through DDP/FSDP if any."""
        if self.runner is None:
            from infuse.train.model import loss_sum

            return loss_sum(self.model, batch)
        return self.runner(batch)

    @contextlib.contextmanager
    def accumulating(self, *, sync: bool) -> Iterator[None]:
        """Backward passes inside keep gradients local unless `sync` (the step's last micro-batch)."""
        if self.context.mode == "ddp" and not sync:
            with self.runner.no_sync():
                yield
            return
        if self.context.mode == "fsdp":
            self.runner.set_requires_gradient_sync(sync)
        yield

    def backward_step(self, micro_batches: list[dict], step_tokens: int, *, device: Any = None) -> float:
        """Forward and backward every micro-batch of one optimizer step; this process's summed loss.

        Each loss is divided by the trained tokens of the whole step (`step_tokens`: all
        micro-batches of all processes), so accumulation and data parallelism give the gradient of
        one big batch; DDP/FSDP average gradients over processes, hence the factor world_size.
        Gradients cross processes only on the last micro-batch. `device`: where each batch goes
        just before its forward (None: where it is).
        """
        step_loss = 0.0
        for index, batch in enumerate(micro_batches):
            if device is not None:
                batch = {key: value.to(device) for key, value in batch.items()}
            with self.accumulating(sync=index == len(micro_batches) - 1):
                loss_total, _count = self.loss_sum(batch)
                (loss_total * self.context.world_size / max(step_tokens, 1)).backward()
            step_loss += float(loss_total.detach())
        return step_loss

    def clip_grad_norm(self, parameters: list, max_norm: float) -> float:
        """Clip the global gradient norm (over all shards); return the norm before clipping."""
        import torch

        norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)


def ddp_options(ddp_class) -> dict:
    """DDP keyword arguments for the installed torch: no buffer sync on each forward, no init sync.

    The buffers (rotary frequencies) are computed identically everywhere and the LoRA weights are
    broadcast by `wrap`, so both syncs are wasted work. Torch 2.13 renamed `broadcast_buffers` to
    `forward_sync_buffers` (and deprecated the old name); torch 2.11 knows only the old one, and
    `init_sync` exists from torch 2.4 on, so the names are read from the signature.
    """
    import inspect

    accepted = inspect.signature(ddp_class.__init__).parameters
    options = {"forward_sync_buffers": False} if "forward_sync_buffers" in accepted else {"broadcast_buffers": False}
    if "init_sync" in accepted:
        options["init_sync"] = False
    return options


def wrap(model, context: DistContext, placement, *, weights_from_rank0: bool = True) -> TrainEngine:
    """Put the peft `model` under DDP or FSDP2 as `context.mode` says (build the optimizer after).

    DDP: LoRA weights are broadcast from rank 0 (the frozen base is identical: same file).
    FSDP2: each decoder layer and then the root are sharded with `fully_shard`; rank 0's
    weights (loaded on CPU; the other ranks hold meta tensors) are scattered shard by shard,
    so no process ever holds more than one full tensor on its device. With
    `weights_from_rank0=False` every process built `model` on the meta device and gets empty
    shards to fill itself (benchmarks on random weights).
    """
    if context.mode == "none":
        return TrainEngine(model=model, context=context)
    import torch
    import torch.distributed as dist

    step_module = _step_module_class()(model)
    if context.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        for parameter in model.parameters():
            if parameter.requires_grad:
                dist.broadcast(parameter.data, src=0)
        runner = DistributedDataParallel(
            step_module, device_ids=[context.local_rank] if placement.device == "cuda" else None,
            **ddp_options(DistributedDataParallel),
        )
        return TrainEngine(model=model, context=context, runner=runner)

    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import distribute_tensor

    full_weights = model.state_dict() if context.is_main else None  # CPU tensors, kept past sharding
    for layer in model.get_base_model().get_decoder().layers:
        fully_shard(layer, mesh=context.mesh)
    fully_shard(step_module, mesh=context.mesh)
    device = torch.device(placement.device, torch.cuda.current_device()) if placement.device == "cuda" \
        else torch.device("cpu")
    if not weights_from_rank0:
        step_module.to_empty(device=device)
        return TrainEngine(model=model, context=context, runner=step_module)
    if not context.is_main:
        step_module.to_empty(device=device)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            source = full_weights[name].to(device) if context.is_main else \
                torch.empty(parameter.shape, dtype=parameter.dtype, device=device)
            shard = distribute_tensor(source, context.mesh, parameter.placements, src_data_rank=0)
            parameter.to_local().copy_(shard.to_local())
        for module in model.modules():  # buffers (e.g. rotary frequencies) are not sharded: copy rank 0's
            for buffer_name, buffer in module.named_buffers(recurse=False):
                dist.broadcast(buffer, src=0)
                if buffer_name == "inv_freq" and hasattr(module, "original_inv_freq"):
                    module.original_inv_freq = buffer.clone()
    del full_weights
    return TrainEngine(model=model, context=context, runner=step_module)


# ---------------------------------------------------------------- saving: gather on rank 0
def gather_trainable(model, context: DistContext) -> dict | None:
    """Full tensors of the trained (LoRA) parameters by peft parameter name, on rank 0; None elsewhere.

    Every process must call it (FSDP all-gathers each shard, in the same order everywhere).
    """
    state = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        value = parameter.full_tensor() if hasattr(parameter, "full_tensor") else parameter
        if context.is_main:
            state[name] = value.detach().cpu().clone()
    return state if context.is_main else None


def save_adapter(model, folder: Path, context: DistContext) -> None:
    """Write the peft adapter (config + safetensors) into `folder` from rank 0; all must call it."""
    if context.mode != "fsdp":
        if context.is_main:
            model.save_pretrained(folder)
        return
    state = gather_trainable(model, context)
    if context.is_main:
        model.save_pretrained(folder, state_dict=state)


def full_optimizer_state(optimizer, context: DistContext) -> dict | None:
    """The optimizer's state_dict in the single-process format, on rank 0 (None elsewhere).

    Under FSDP the per-parameter moments are gathered from their shards (all must call it).
    """
    state = optimizer.state_dict()
    if context.mode != "fsdp":
        return state if context.is_main else None
    gathered = {}
    for index in sorted(state["state"]):
        entry = {}
        for key, value in state["state"][index].items():
            if hasattr(value, "full_tensor"):
                value = value.full_tensor().cpu()
            entry[key] = value
        gathered[index] = entry
    return {"state": gathered, "param_groups": state["param_groups"]} if context.is_main else None


# ---------------------------------------------------------------- loading: shard on every process
def load_adapter_weights(model, weights: dict, context: DistContext) -> None:
    """Copy full LoRA tensors (peft file names) into this process's shards of `model` (FSDP)."""
    import torch
    from torch.distributed.tensor import distribute_tensor

    from infuse.errors import ConfigError

    adapter = f".{model.active_adapter}"
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                continue
            key = name.replace(adapter, "")
            if key not in weights:
                raise ConfigError(f"the checkpoint has no tensor '{key}': it was written for other "
                                  "LoRA settings (target_modules, lora_r); resume with the run's own.")
            full = weights[key].to(dtype=parameter.dtype, device=parameter.to_local().device)
            shard = distribute_tensor(full, context.mesh, parameter.placements, src_data_rank=None)
            parameter.to_local().copy_(shard.to_local())


def load_optimizer_state(optimizer, state: dict, context: DistContext) -> None:
    """Load a single-process optimizer state_dict, sharding each moment like its parameter (FSDP)."""
    from torch.distributed.tensor import distribute_tensor

    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entry in state["state"].items():
        parameter = parameters[index]
        for key, value in list(entry.items()):
            if hasattr(parameter, "placements") and getattr(value, "shape", None) == parameter.shape:
                full = value.to(dtype=parameter.dtype, device=parameter.to_local().device)
                entry[key] = distribute_tensor(full, context.mesh, parameter.placements, src_data_rank=None)
    optimizer.load_state_dict(state)
