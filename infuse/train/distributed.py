"""Training on several processes at once (one per GPU), launched by `torchrun` or `accelerate launch`.

The launcher starts N copies of `infuse train`; each reads its rank from the environment
(`read_launch`, the one place that does). Nothing else changes for the user:

- the global batch stays what one process would use: `grad_accum` counts micro-batches of one
  optimizer step across ALL processes, so each process accumulates `grad_accum / N` of them
  (`per_rank_grad_accum`; ConfigError when N does not divide it);
- the data order is the single-process order: optimizer step s uses global micro-batches
  [s*grad_accum, (s+1)*grad_accum) and process r takes every N-th of them starting at r
  (`rank_micro_batches`), so each row is used exactly once per epoch across processes;
- the loss of a step is normalised by the trained tokens of ALL processes (one all-reduce),
  so the gradient equals the single-process gradient;
- DDP keeps a full model copy per device and all-reduces the LoRA gradients; FSDP2
  (`fully_shard`, per decoder layer) shards the frozen base weights and the LoRA weights, and
  only rank 0 reads the weights from disk (the others build on the meta device);
- only rank 0 writes; checkpoints hold the full (gathered) adapter and optimizer state in the
  single-process format, so a run resumes on any number of processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError

MODES = ("auto", "ddp", "fsdp", "none")
# auto picks DDP when the base weights take at most this share of one device's memory; the
# rest is for activations (seq 2048 with checkpointing), LoRA gradients, AdamW state, CUDA context.
DDP_MEMORY_SHARE = 0.5
_DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class Launch:
    """What the launcher told this process: its rank, how many processes, its device index."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    accelerate_fsdp: bool = False  # `accelerate launch --use_fsdp`


def read_launch(environ: Mapping[str, str] | None = None) -> Launch:
    """Rank, world size and local rank as torchrun / accelerate launch set them (1 process if unset)."""
    env = os.environ if environ is None else environ
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(
            "WORLD_SIZE/RANK/LOCAL_RANK are not integers; start multi-process training with "
            "`torchrun --nproc-per-node N -m infuse train ...` or `accelerate launch`."
        ) from None
    fsdp = env.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes")
    return Launch(rank=rank, world_size=max(world_size, 1), local_rank=local_rank, accelerate_fsdp=fsdp)


def per_rank_grad_accum(grad_accum: int, world_size: int, batch_size: int = 1) -> int:
    """Micro-batches each process accumulates per optimizer step; ConfigError when N does not divide."""
    if grad_accum % world_size:
        multiple = world_size * max(1, -(-grad_accum // world_size))
        raise ConfigError(
            f"grad_accum={grad_accum} counts the micro-batches of one optimizer step across all "
            f"{world_size} processes and must be a multiple of {world_size}, so the global batch "
            f"(batch_size x grad_accum = {batch_size * grad_accum}) stays what one process uses. "
            f"Use --grad-accum {multiple}, or launch a number of processes that divides {grad_accum}."
        )
    return grad_accum // world_size


def rank_micro_batches(first: int, grad_accum: int, rank: int, world_size: int) -> list[int]:
    """Global micro-batch numbers process `rank` trains on in the step starting at micro-batch `first`."""
    return [first + k for k in range(rank, grad_accum, world_size)]


def choose_mode(requested: str, world_size: int, *, device: str, weight_bytes: int | None,
                device_bytes: int | None) -> str:
    """none | ddp | fsdp: `requested` unless 'auto' (DDP when the weights fit one device with room)."""
    if world_size == 1:
        return "none"
    if requested != "auto":
        return requested
    if device != "cuda" or not weight_bytes or not device_bytes:
        return "ddp"  # CPU processes share one memory: sharding saves nothing there
    return "ddp" if weight_bytes <= DDP_MEMORY_SHARE * device_bytes else "fsdp"


def weight_bytes(model_path: Path, dtype_name: str) -> int | None:
    """Bytes the base weights take in `dtype_name`, from the safetensors headers (None if unknown)."""
    count = 0
    for path in sorted(Path(model_path).glob("*.safetensors")):
        with open(path, "rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(length))
        for name, entry in header.items():
            if name != "__metadata__":
                numel = 1
                for size in entry["shape"]:
                    numel *= size
                count += numel
    return count * _DTYPE_BYTES.get(dtype_name, 4) if count else None


@dataclass
class DistContext:
    """This process's place in the run; a single process is rank 0 of 1 with mode 'none'."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp
    requested: str = "auto"
    device: str = "cpu"
    owns_group: bool = False
    warnings: list[str] = field(default_factory=list)
    mesh: Any = None

    @property
    def is_main(self) -> bool:
        """True on the one process that writes (rank 0)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait until every process got here (no-op for one process)."""
        if self.is_distributed:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, value: float) -> float:
        """Sum of `value` over all processes (one all-reduce; identity for one process)."""
        if not self.is_distributed:
            return value
        import torch
        import torch.distributed as dist

        total = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(total)
        return float(total.item())

    def check_same(self, text: str, what: str) -> None:
        """ConfigError on every process when `text` differs between processes (e.g. the data order)."""
        if not self.is_distributed:
            return
        digest = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
        low, high = self.sum(digest), self.sum(-digest)
        if low != digest * self.world_size or high != -digest * self.world_size:
            raise ConfigError(
                f"{what} differs between the {self.world_size} processes; every process must see the "
                "same model, data file and settings (same paths on every node)."
            )

    def main_first(self, work: Callable[[], Any]) -> Any:
        """Run `work` on rank 0 first, then on the others (e.g. a cached conversion written once)."""
        if self.is_main:
            result = work()
            self.barrier()
            return result
        self.barrier()
        return work()

    def seed_step(self, seed: int, step: int) -> None:
        """Per-process, per-step seed of the dropout RNG, so a resumed run draws what it would have."""
        if self.is_distributed:
            import torch

            torch.manual_seed(seed * 1_000_003 + step * 1_009 + self.rank)

    def finish(self) -> None:
        """Tear down the process group if this run created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False

    def _comm_device(self) -> str:
        return "cuda" if self.device == "cuda" else "cpu"


def refuse_unsupported(config, world_size: int, *, backend: str | None = None) -> None:
    """ConfigError for settings that cannot run on `world_size` > 1 processes (no-op for one).

    `train` calls it before resolving the device and backend, so a user who launches
    `--backend unsloth` under torchrun hears why at once, not that unsloth is missing.
    """
    if world_size <= 1:
        return
    n = world_size
    if config.distributed == "none":
        raise ConfigError(f"distributed='none' but the launcher started {n} processes; use "
                          "--distributed auto|ddp|fsdp, or run `infuse train` without torchrun.")
    if (backend or config.backend) == "unsloth":
        raise ConfigError(f"backend='unsloth' cannot train on {n} processes: the open Unsloth trains on "
                          "one GPU only. Use --backend auto (infuse's own fused kernels, which run under "
                          "DDP and FSDP) with torchrun/accelerate, or run `infuse train --backend unsloth` "
                          "without a launcher on one GPU.")
    if config.load_in_4bit:
        raise ConfigError(f"load_in_4bit (QLoRA) is not supported on {n} processes yet; drop "
                          "--load-in-4bit (FSDP shards the bf16 base weights instead).")


def start(config, placement, environ: Mapping[str, str] | None = None):
    """Join the launcher's process group; return (DistContext, placement adjusted for it).

    With one process nothing happens. Raises ConfigError for what cannot run distributed:
    `distributed='none'` under a multi-process launch, the Unsloth backend, QLoRA, or a
    `grad_accum` the process count does not divide. infuse's fused CUDA kernels and its
    CPU-offloaded checkpoints stay on: under FSDP each decoder layer's fast forward runs inside
    the layer's own FSDP unit (`infuse.train.fast_decoder`), so the shards are gathered for it.
    """
    launch = read_launch(environ)
    requested = "fsdp" if config.distributed == "auto" and launch.accelerate_fsdp else config.distributed
    if launch.world_size == 1:
        context = DistContext(requested=requested, device=placement.device)
        if config.distributed in ("ddp", "fsdp"):
            context.warnings.append(
                f"distributed='{config.distributed}' has no effect in one process; launch several with "
                "`torchrun --nproc-per-node N -m infuse train ...`."
            )
        return context, placement
    n = launch.world_size
    refuse_unsupported(config, n, backend=placement.backend)
    per_rank_grad_accum(config.grad_accum, n, config.batch_size)
    context = DistContext(rank=launch.rank, world_size=n, local_rank=launch.local_rank,
                          requested=requested, device=placement.device)
    import torch
    import torch.distributed as dist

    if placement.device == "cuda":
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if placement.device == "cuda" else "gloo")
        context.owns_group = True
    return context, placement


def resolve_mode(context: DistContext, model_path: Path, placement) -> str:
    """Settle DDP or FSDP for this run (auto: by weight size against one device's memory)."""
    device_bytes = None
    if placement.device == "cuda":
        import torch

        device_bytes = torch.cuda.get_device_properties(context.local_rank).total_memory
    mode = choose_mode(context.requested, context.world_size, device=placement.device,
                       weight_bytes=weight_bytes(model_path, placement.dtype_name), device_bytes=device_bytes)
    return use_mode(context, mode)


def use_mode(context: DistContext, mode: str) -> str:
    """Set `context.mode` (none | ddp | fsdp); FSDP gets its one-dimensional device mesh."""
    context.mode = mode
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh

        context.mesh = init_device_mesh(context.device, (context.world_size,))
    return mode


def load_base_model(config, model_path: Path, placement, context: DistContext):
    """The frozen base model: as usual, except under FSDP, where only rank 0 reads the weights
    (into CPU memory; sharding moves them to the GPUs) and the others build it on the meta device."""
    from infuse.train import model as lora_model

    if context.mode != "fsdp":
        return lora_model.load_base_model(config, model_path, placement)
    if context.is_main:
        return lora_model.load_base_model(config, model_path, dataclasses.replace(placement, device="cpu"))
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config, dtype=placement.dtype)
    model.config.use_cache = False
    return model

