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
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.files import FolderLock, check_writable_folder
from infuse.train.batches import BatchPlan, collate
from infuse.train.checkpoint import (
    TrainerState,
    load_checkpoint,
    save_checkpoint,
    usable_checkpoint,
)
from infuse.train.config import RunConfig
from infuse.train.data_parallel import save_adapter
from infuse.train.metrics import MetricsLog, OverfitWatch, plot_loss
from infuse.train.runs import LOCK_FILE, RECORD_FILE, RunRecord, is_run_folder

ProgressCallback = Callable[..., None]  # on_progress(done_steps, total_steps, **info)


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
    record: RunRecord | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain values (what `infuse train --json` prints)."""
        return {
            "run_dir": str(self.run_dir), "steps": self.steps, "final_loss": self.final_loss,
            "eval_loss": self.eval_loss, "tokens_per_s": round(self.tokens_per_s, 1),
            "trained_share": round(self.trained_share, 4), "device": self.device, "dtype": self.dtype,
            "backend": self.backend, "warnings": self.warnings, "distributed": self.distributed,
            "processes": self.world_size,
            "train_examples": self.record.train_examples if self.record else None,
            "dropped_examples": self.record.dropped_examples if self.record else 0,
        }


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


def check_output_folder(run_dir: Path, *, force: bool = False) -> Path:
    """Refuse an output that is a file, a non-empty folder infuse did not write, or unwritable.

    A folder holding the user's own files is never written into unless `force` is set.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--output {run_dir} is a file, not a folder. Give a folder for the run.")
    if run_dir.is_dir() and not force and not is_run_folder(run_dir):
        foreign = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".infuse-write-check."))
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ConfigError(
                f"--output {run_dir} is not empty ({shown}) and holds no infuse run: training would "
                "write over those files. Give a new or empty folder, or pass --force to write into it."
            )
    return check_writable_folder(run_dir, setting="--output")


def check_existing_run(run_dir: Path, config: RunConfig, resume: bool) -> None:
    """Refuse to start over a run unless resuming it; refuse to resume a run that is finished."""
    has_run = (run_dir / "checkpoints").exists() or (run_dir / "adapter_config.json").exists()
    if not resume and has_run:
        raise ConfigError(
            f"{run_dir} already holds a run. Continue it with --resume, or pick another --output."
        )
    if resume and not has_run and not (run_dir / RECORD_FILE).exists():
        raise ConfigError(
            f"--resume: {run_dir} holds no run to continue (no {RECORD_FILE} or checkpoints). "
            "Check --output, or drop --resume to start a new run there."
        )
    if resume and (run_dir / RECORD_FILE).exists():
        record = RunRecord.read(run_dir, metrics=False)
        same_length = (config.max_steps, config.num_epochs) == (record.config.max_steps,
                                                                  record.config.num_epochs)
        if record.is_finished and same_length:
            raise ConfigError(
                f"{run_dir} is a finished run ({record.steps} of {record.total_steps} steps): there is "
                "nothing to resume. Use it (`infuse chat`, `infuse eval --run`), train it longer with "
                "--resume and a higher --max-steps, or start a new run in another --output."
            )


def train(config: RunConfig, *, resume: bool = False, force: bool = False,
          on_progress: ProgressCallback | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter as `config` says; write everything into `config.output`.

    With `resume=True`, continue from the newest whole checkpoint in the run folder (same data
    order, optimizer, scheduler and random state). `force=True` writes into a non-empty folder
    that holds no run. `on_progress(done_steps, total_steps, loss=, tokens_per_s=)` is called
    after each optimizer step, and `on_progress(done, total, warning=...)` for each warning.
    Raises ConfigError/DataError/TemplateError before any training when settings or data are
    unusable, BusyError when another process trains into the same folder. Launched by torchrun
    or accelerate on several processes, each process calls it and trains its share (see
    infuse.train.distributed).
    """
    from infuse.train import distributed
    from infuse.train import model as lora_model

    # ---- checks and setup: everything that can fail, fails here ----
    config.validate()
    run_dir = check_output_folder(Path(config.output).expanduser(), force=force)
    distributed.refuse_unsupported(config, distributed.read_launch().world_size)  # before any device check
    placement = lora_model.choose_placement(config)
    dist, placement = distributed.start(config, placement)  # one process: rank 0 of 1, mode 'none'
    try:
        # rank 0 writes the run folder, so it alone holds the lock
        lock = FolderLock(run_dir / LOCK_FILE, what=f"Run folder {run_dir}") if dist.is_main else nullcontext()
        with lock:
            check_existing_run(run_dir, config, resume)
            return _train(config, run_dir, placement, dist, resume, on_progress)
    finally:
        dist.finish()


def _train(config, run_dir, placement, dist, resume, on_progress) -> TrainResult:
    """The run itself, on this process: model, data, the loop, the run folder."""
    import torch

    from infuse.models import resolve_chat_model
    from infuse.train import distributed
    from infuse.train import model as lora_model
    from infuse.train.data_parallel import wrap
    from infuse.train.examples import build_token_data

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
    trainable_count, all_count = count_parameters(model)
    if placement.fused_kernels:  # also under DDP/FSDP (FSDP: installed on the CPU/meta model, run sharded)
        from infuse.train.kernels import apply_fused_kernels

        apply_fused_kernels(model, compile_layers=config.compile_layers and dist.mode != "fsdp",
                            device=placement.device)
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
    checkpoint, skipped = usable_checkpoint(run_dir) if resume else (None, [])
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, dist)
        if state.step >= steps:
            raise ConfigError(
                f"{run_dir} is a finished run ({state.step} of {steps} steps): there is nothing to "
                "resume. Train it longer with --resume and a higher --max-steps, or use another --output."
            )
    warnings = skipped + list(data.warnings) + dist.warnings
    if resume and checkpoint is None:
        warnings.insert(0, f"{run_dir} has no checkpoint yet (the run stopped before its first save): "
                           "training starts from step 0.")

    def report(**info) -> None:
        if on_progress is not None and dist.is_main:
            on_progress(state.step, steps, **info)

    for message in warnings:
        report(warning=message)
    record = RunRecord(
        config=config, model_path=str(model_path), device=placement.device, dtype=placement.dtype_name,
        backend=placement.backend, fused_kernels=placement.fused_kernels, distributed=dist.mode,
        processes=dist.world_size, train_examples=len(data.train), eval_examples=len(data.eval),
        dropped_examples=data.dropped_rows, model_parameters=all_count - trainable_count,
        trainable_parameters=trainable_count, supervised_token_fraction=round(data.trained_share, 4),
        unlabelled_examples=data.unlabelled_rows,
        total_steps=steps, steps=state.step, chat_template=data.chat_template, warnings=list(warnings),
    )
    metrics = None  # only rank 0 writes the run folder
    if dist.is_main:
        if resume and (run_dir / RECORD_FILE).exists():
            record.started = RunRecord.read(run_dir, metrics=False).started
        record.write(run_dir)
        metrics = MetricsLog(run_dir / "metrics.jsonl", resume_from_step=state.step if checkpoint else None)
    watch = OverfitWatch()

    # ---- the loop ----
    pad_id = tokenizer.pad_token_id
    model.train()
    last_loss, last_eval, losses_since_eval = None, None, []
    started = time.perf_counter() - state.elapsed_s
    report()
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
        # Losses are normalised by the trained tokens of the whole step (all micro-batches of all
        # processes): see TrainEngine.backward_step.
        step_tokens = int(dist.sum(sum(int((b["targets"] != -100).sum()) for b in micro_batches)))
        step_loss = dist.sum(engine.backward_step(micro_batches, step_tokens, device=placement.device))
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
                report(warning=warning)
        if metrics and (state.step % config.log_every == 0 or "eval_loss" in row or state.step == steps):
            metrics.append(row)
        report(loss=last_loss, tokens_per_s=state.tokens_seen / max(state.elapsed_s, 1e-9))
        if state.step % config.save_every == 0 and state.step < steps:
            save_checkpoint(run_dir, state, model, optimizer, scheduler, keep=config.keep_checkpoints,
                            context=dist)

    # ---- the run folder (all processes gather, rank 0 writes) ----
    save_adapter(model, run_dir, dist)
    save_checkpoint(run_dir, state, model, optimizer, scheduler, keep=config.keep_checkpoints, context=dist)
    tokens_per_s = state.tokens_seen / max(state.elapsed_s, 1e-9)
    if dist.is_main:
        tokenizer.save_pretrained(run_dir)  # the exact tokenizer + template chat/export will use
        if metrics:
            plot_loss(metrics.rows, run_dir / "loss.png")
        record.steps, record.training_s = state.step, round(state.elapsed_s, 3)
        record.final_loss, record.eval_loss = last_loss, last_eval
        record.tokens_per_s, record.warnings = round(tokens_per_s, 1), list(warnings)
        record.mark_finished()
        record.write(run_dir)  # last: also puts back the template save_pretrained may rewrite
    dist.barrier()  # the run folder is complete before any process returns
    return TrainResult(
        run_dir=run_dir, steps=state.step, final_loss=last_loss, eval_loss=last_eval,
        tokens_per_s=tokens_per_s, trained_share=data.trained_share,
        device=placement.device, dtype=placement.dtype_name, backend=placement.backend,
        warnings=warnings, distributed=dist.mode, world_size=dist.world_size, rank=dist.rank,
        record=record,
    )


def count_parameters(model) -> tuple[int, int]:
    """(trainable, all) parameters; peft's count, which counts 4-bit weights at full size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(n) for n in model.get_nb_trainable_parameters())
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


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
