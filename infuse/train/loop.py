"""The training loop: read it top to bottom.

    config -> checks -> tokens -> model + LoRA -> for each step:
        take the step's micro-batches -> forward -> loss / trained tokens -> backward
        -> clip -> optimizer step -> schedule step -> log -> eval -> checkpoint
    -> adapter, template, config, metrics, loss curve in the run folder

Everything that can be wrong with the settings or the data is found before the first step.
Under `torchrun`/`accelerate launch` every process runs this same loop on its share of each
step's micro-batches (`infuse.train.distributed`); only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from infuse.errors import ConfigError
from infuse.train.batches import BatchPlan, collate
from infuse.train.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from infuse.train.config import RunConfig, dump_toml, write_text_atomic
from infuse.train.data_parallel import save_adapter
from infuse.train.metrics import MetricsLog, OverfitWatch, plot_loss
from infuse.train.runs import CONFIG_FILE, TEMPLATE_FILE


@dataclass
class TrainResult:
    """What a finished run produced and measured."""

    run_dir: Path
    steps: int
    final_loss: float | None
    eval_loss: float | None
    tokens_per_s: float
    trained_share: float
    device: str
    dtype: str
    backend: str
    warnings: list[str] = field(default_factory=list)
    distributed: str = "none"  # none | ddp | fsdp
    world_size: int = 1
    rank: int = 0


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step `step` (0-based): warm-up, then the schedule."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1.0 - progress)


def total_steps(config: RunConfig, plan: BatchPlan) -> int:
    """Optimizer steps of the run: max_steps, else the epochs' micro-batches / grad_accum."""
    if config.max_steps:
        return config.max_steps
    return max(1, math.ceil(config.num_epochs * plan.per_epoch / config.grad_accum))


def prepare_run_dir(config: RunConfig, resume: bool) -> Path:
    """Create the run folder; refuse to overwrite a run unless resuming it."""
    run_dir = Path(config.output).expanduser()
    if not resume and ((run_dir / "checkpoints").exists() or (run_dir / "adapter_config.json").exists()):
        raise ConfigError(
            f"{run_dir} already holds a run. Continue it with --resume, or pick another --output."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train(config: RunConfig, *, resume: bool = False, show_progress: bool = True,
          console=None) -> TrainResult:
    """Fine-tune a LoRA adapter as `config` says; write everything into `config.output`.

    With `resume=True`, continue from the newest checkpoint in the run folder (same data
    order, optimizer, scheduler and random state). Raises ConfigError/DataError/TemplateError
    before any training when settings or data are unusable. Launched by torchrun or accelerate
    on several processes, each process calls it and trains its share (see infuse.train.distributed).
    """
    from infuse.train import distributed
    from infuse.train import model as lora_model

    # ---- checks and setup: everything that can fail, fails here ----
    config.validate()
    run_dir = prepare_run_dir(config, resume)  # every process checks; rank 0 is the one that writes
    placement = lora_model.choose_placement(config)
    dist, placement = distributed.start(config, placement)  # one process: rank 0 of 1, mode 'none'
    try:
        return _train(config, run_dir, placement, dist, resume, show_progress, console)
    finally:
        dist.finish()


def _train(config, run_dir, placement, dist, resume, show_progress, console) -> TrainResult:
    """The run itself, on this process: model, data, the loop, the run folder."""
    import torch

    from infuse.models import resolve_chat_model
    from infuse.train import distributed
    from infuse.train import model as lora_model
    from infuse.train.data_parallel import wrap
    from infuse.train.examples import build_token_data
    from infuse.train.progress import TrainProgress

    seed_everything(config.seed)
    model_path = dist.main_first(lambda: resolve_chat_model(config.model))
    tokenizer = lora_model.load_tokenizer_for(model_path)
    data = build_token_data(config, tokenizer)
    distributed.resolve_mode(dist, model_path, placement)
    if placement.backend == "unsloth":
        model, _ = lora_model.load_unsloth_lora(config, model_path, placement)
    else:
        base = distributed.load_base_model(config, model_path, placement, dist)
        model = lora_model.add_lora(config, base)
    if placement.fused_kernels:
        from infuse.train.kernels import apply_fused_kernels

        apply_fused_kernels(model, compile_layers=config.compile_layers)
    plan = BatchPlan.build(data.train, batch_size=config.batch_size, max_seq_len=config.max_seq_len,
                           packing=config.packing, seed=config.seed)
    dist.check_same(json.dumps(plan.groups), "The data order (tokenized rows grouped into micro-batches)")
    engine = wrap(model, dist, placement)  # DDP / FSDP2 when launched on several processes
    steps = total_steps(config, plan)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay,
                                  fused=placement.device == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup=config.warmup_steps, total=steps, schedule=config.lr_schedule)
    )
    state = TrainerState()
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, dist)
    metrics = None  # only rank 0 writes the run folder
    if dist.is_main:
        write_text_atomic(run_dir / CONFIG_FILE, dump_toml(config.to_dict()))
        write_text_atomic(run_dir / TEMPLATE_FILE, data.chat_template)
        write_text_atomic(run_dir / "run_info.json", json.dumps(
            {"model_path": str(model_path), "device": placement.device, "dtype": placement.dtype_name,
             "backend": placement.backend, "fused_kernels": placement.fused_kernels,
             "distributed": dist.mode, "processes": dist.world_size,
             "train_rows": len(data.train), "eval_rows": len(data.eval),
             "trained_share": round(data.trained_share, 4), "total_steps": steps}, indent=2))
        metrics = MetricsLog(run_dir / "metrics.jsonl", resume_from_step=state.step if checkpoint else None)
    watch = OverfitWatch()
    warnings = list(data.warnings) + dist.warnings
    progress = TrainProgress(steps, enabled=show_progress and dist.is_main, console=console)
    for message in warnings if dist.is_main else []:
        progress.warn(message)

    # ---- the loop ----
    pad_id = tokenizer.pad_token_id
    model.train()
    last_loss, last_eval, losses_since_eval = None, None, []
    started = time.perf_counter() - state.elapsed_s
    progress.start(state.step)
    while state.step < steps:
        step_start = time.perf_counter()
        dist.seed_step(config.seed, state.step)
        # This process's share of the step: every world_size-th of its grad_accum micro-batches.
        micro_batches = [
            collate([data.train[i] for i in plan.micro_batch(number)], packing=config.packing, pad_id=pad_id)
            for number in distributed.rank_micro_batches(state.next_micro_batch, config.grad_accum,
                                                         dist.rank, dist.world_size)
        ]
        state.next_micro_batch += config.grad_accum
        # Normalise by the trained tokens of the whole step (all micro-batches of all processes),
        # so accumulation and data parallelism give the same gradient as one big batch. DDP/FSDP
        # average gradients over processes, hence the factor world_size.
        step_tokens = int(dist.sum(sum(int((b["targets"] != -100).sum()) for b in micro_batches)))
        step_loss = 0.0
        for index, batch in enumerate(micro_batches):
            batch = {k: v.to(placement.device) for k, v in batch.items()}
            with engine.accumulating(sync=index == len(micro_batches) - 1):
                loss_total, _count = engine.loss_sum(batch)
                (loss_total * dist.world_size / max(step_tokens, 1)).backward()
            step_loss += float(loss_total.detach())
        step_loss = dist.sum(step_loss)
        grad_norm = None
        if config.max_grad_norm > 0:
            grad_norm = engine.clip_grad_norm(trainable, config.max_grad_norm)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1

        input_tokens = int(dist.sum(sum(int(b["input_ids"].numel()) if "position_ids" in b
                                        else int(b["attention_mask"].sum()) for b in micro_batches)))
        state.tokens_seen += input_tokens
        state.elapsed_s = time.perf_counter() - started
        last_loss = step_loss / max(step_tokens, 1)
        losses_since_eval.append(last_loss)
        row = {"step": state.step, "epoch": round(state.next_micro_batch / plan.per_epoch, 4),
               "loss": round(last_loss, 6), "learning_rate": learning_rate,
               "grad_norm": None if grad_norm is None else round(grad_norm, 6),
               "trained_tokens": step_tokens, "tokens": input_tokens,
               "tokens_per_s": round(input_tokens / max(time.perf_counter() - step_start, 1e-9), 1),
               "elapsed_s": round(state.elapsed_s, 3)}
        if data.eval and (state.step % config.eval_every == 0 or state.step == steps):
            last_eval = evaluate(model, data.eval, config, placement.device, pad_id, forward=engine.loss_sum)
            row["eval_loss"] = round(last_eval, 6)
            warning = watch.update(sum(losses_since_eval) / len(losses_since_eval), last_eval)
            losses_since_eval = []
            if warning:
                warnings.append(warning)
                if dist.is_main:
                    progress.warn(warning)
        if metrics and (state.step % config.log_every == 0 or "eval_loss" in row or state.step == steps):
            metrics.append(row)
        progress.update(state.step, last_loss, state.tokens_seen / max(state.elapsed_s, 1e-9))
        if state.step % config.save_every == 0 and state.step < steps:
            save_checkpoint(run_dir, state, model, optimizer, scheduler, keep=config.keep_checkpoints,
                            context=dist)
    progress.stop()

    # ---- the run folder (all processes gather, rank 0 writes) ----
    save_adapter(model, run_dir, dist)
    if dist.is_main:
        tokenizer.save_pretrained(run_dir)  # the exact tokenizer + template chat/export will use
        write_text_atomic(run_dir / TEMPLATE_FILE, data.chat_template)
    save_checkpoint(run_dir, state, model, optimizer, scheduler, keep=config.keep_checkpoints, context=dist)
    if metrics:
        plot_loss(metrics.rows, run_dir / "loss.png")
    dist.barrier()  # the run folder is complete before any process returns
    return TrainResult(
        run_dir=run_dir, steps=state.step, final_loss=last_loss, eval_loss=last_eval,
        tokens_per_s=state.tokens_seen / max(state.elapsed_s, 1e-9), trained_share=data.trained_share,
        device=placement.device, dtype=placement.dtype_name, backend=placement.backend,
        warnings=warnings, distributed=dist.mode, world_size=dist.world_size, rank=dist.rank,
    )


def evaluate(model, examples, config: RunConfig, device: str, pad_id: int, forward=None) -> float:
    """Mean token loss of `examples` (no gradients, dropout off).

    `forward(batch) -> (loss sum, tokens)` defaults to `loss_sum` on `model`; under DDP/FSDP it is
    the engine's, and every process evaluates every example (same result everywhere).
    """
    import torch

    from infuse.train.model import loss_sum

    forward = forward or (lambda batch: loss_sum(model, batch))
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), config.batch_size):
            batch = collate(examples[start : start + config.batch_size], packing=False, pad_id=pad_id)
            loss, tokens = forward({k: v.to(device) for k, v in batch.items()})
            total += float(loss)
            count += tokens
    model.train()
    return total / max(count, 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (the data order has its own seeded generator)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
