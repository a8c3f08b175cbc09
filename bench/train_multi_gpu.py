"""Multi-GPU LoRA training: tokens/s and peak memory per GPU with DDP and FSDP2, scaling vs 1 GPU.

Each configuration runs under `torchrun --nproc-per-node N` with infuse's own distributed engine
(`infuse.train.distributed` + `infuse.train.data_parallel`, the code `infuse train` runs): LoRA
r=16 / alpha 16 on all seven linear projections, bf16, gradient checkpointing, AdamW, random
tokens. The global batch is fixed (batch x grad_accum sequences per optimizer step, as
`infuse train` keeps it), so N GPUs each do grad_accum / N micro-batches per step: this is the
strong scaling a user sees when adding GPUs to the same run.

Two backends, each on every row: `infuse` (infuse's fast path: its own decoder forward with the
fused LoRA kernels and checkpoints offloaded to CPU memory, the default of `infuse train` on
CUDA, now also under DDP and FSDP2) and `peft` (plain transformers + peft, HF gradient
checkpointing). Scaling efficiency is given against the same backend on 1 GPU and against
infuse on 1 GPU (the best single-GPU path).

Every row starts from the same weights: the model is built on the meta device and each parameter
is filled from its own seeded generator (full tensor, then this process's shard), so 1 process,
DDP and FSDP2 train the same model on the same global micro-batches and their losses agree.

Rows: the Llama-3.1-8B shape on each GPU count (1 = one process, N = DDP and FSDP2), and the
Llama-3.1-70B shape with FSDP2 on the most GPUs (built on the meta device and materialised
sharded: never whole on one GPU or in host memory; nothing is downloaded or read from disk).

    python bench/train_multi_gpu.py                         # all lent GPUs
    python bench/train_multi_gpu.py --gpus 1,2 --shapes 8b  # a subset
    python bench/train_multi_gpu.py --tiny                  # CPU smoke test: gloo, 1 and 2 processes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROPE_31 = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
SHAPES = {
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
               max_position_embeddings=131072, rms_norm_eps=1e-5, rope_parameters=ROPE_31),
    "70b": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
                max_position_embeddings=131072, rms_norm_eps=1e-5, rope_parameters=ROPE_31),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=False,
                 max_position_embeddings=4096, rms_norm_eps=1e-5),
}


# ---------------------------------------------------------------- one configuration (each process)
def fill_weights(model, device, model_config) -> None:
    """The same random weights at every process count and engine: each parameter from its own seed.

    The full tensor is drawn on `device` (one at a time), then this process keeps its shard
    (FSDP2: a DTensor's local part; otherwise the whole). Base weights N(0, 0.02), norms 1,
    LoRA A N(0, 1/sqrt(in)), LoRA B 0 (as peft starts it). Rotary frequencies are recomputed.
    """
    import torch
    from torch.distributed.tensor import DTensor, distribute_tensor

    with torch.no_grad():
        for index, (name, parameter) in enumerate(model.named_parameters()):
            full = torch.empty(parameter.shape, dtype=parameter.dtype, device=device)
            generator = torch.Generator(device=device).manual_seed(10_000 + index)
            if "lora_B" in name:
                full.zero_()
            elif "norm" in name:
                full.fill_(1.0)
            elif "lora_A" in name:
                full.normal_(0.0, parameter.shape[-1] ** -0.5, generator=generator)
            else:
                full.normal_(0.0, 0.02, generator=generator)
            if isinstance(parameter, DTensor):
                shard = distribute_tensor(full, parameter.device_mesh, parameter.placements, src_data_rank=None)
                parameter.to_local().copy_(shard.to_local())
            else:
                parameter.copy_(full)
            del full
        for module in model.modules():
            if hasattr(module, "inv_freq"):
                fresh = type(module)(model_config).to(device)
                module.inv_freq.copy_(fresh.inv_freq)
                module.original_inv_freq = fresh.inv_freq.clone()


def build_model(args, context, placement):
    """The LoRA model of `args.shape`, same seeded weights everywhere, wrapped as `context.mode` says."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from infuse.train.config import RunConfig
    from infuse.train.data_parallel import wrap
    from infuse.train.kernels import apply_fused_kernels
    from infuse.train.model import add_lora

    model_config = LlamaConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, **SHAPES[args.shape])
    run = RunConfig(data="-", output="-", lora_r=16, lora_alpha=16, gradient_checkpointing=True)
    device = torch.device(placement.device, torch.cuda.current_device()) if placement.device == "cuda" \
        else torch.device("cpu")
    torch.set_default_dtype(placement.dtype)
    with torch.device("meta"):  # every row: built without memory, then filled the same way
        base = LlamaForCausalLM(model_config)
    torch.set_default_dtype(torch.float32)
    base.config.use_cache = False
    model = add_lora(run, base)
    applied: list[str] = []
    if context.mode != "fsdp":
        model.to_empty(device=device)
        fill_weights(model, device, model_config)
    if args.backend == "infuse":  # infuse's fast path; on CPU (--tiny) installed directly
        if placement.device == "cuda":
            applied = apply_fused_kernels(model, device=placement.device, compile_layers=False)
        else:
            from infuse.train.fast_decoder import install_fast_decoder

            applied = ["fast_decoder"] if install_fast_decoder(model) is not None else []
        if not applied or not applied[0].startswith("fast_decoder"):
            raise SystemExit(f"infuse's fast path did not install on the {args.shape} shape: {applied}")
    engine = wrap(model, context, placement, weights_from_rank0=False)
    if context.mode == "fsdp":  # fill this process's shards only: never a whole model anywhere
        fill_weights(model, device, model_config)
    return model, engine


def worker(args) -> None:
    """Train `args.steps` timed optimizer steps after `args.warmup`; rank 0 prints one RESULT line."""
    import resource

    import torch
    import torch.distributed as tdist

    from infuse.train import distributed
    from infuse.train.config import RunConfig
    from infuse.train.model import Placement

    cuda = torch.cuda.is_available()
    fused = args.backend == "infuse" and cuda
    placement = Placement(device="cuda" if cuda else "cpu", dtype_name="bf16" if cuda else "fp32",
                          backend="hf", fused_kernels=fused)
    run = RunConfig(data="-", output="-", grad_accum=args.grad_accum, batch_size=args.batch,
                    distributed=args.mode, fused_kernels=fused)
    context, placement = distributed.start(run, placement)
    distributed.use_mode(context, args.mode if context.world_size > 1 else "none")
    distributed.per_rank_grad_accum(args.grad_accum, context.world_size, args.batch)  # N must divide it
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model, engine = build_model(args, context, placement)
    build_s = time.perf_counter() - started
    generator = torch.Generator().manual_seed(1234)  # the same global micro-batches at every N
    vocab = SHAPES[args.shape]["vocab_size"]
    every = [torch.randint(3, vocab, (args.batch, args.seq), generator=generator) for _ in range(args.grad_accum)]
    batches = []
    for number in distributed.rank_micro_batches(0, args.grad_accum, context.rank, context.world_size):
        ids = every[number]
        targets = torch.cat([ids[:, 1:], torch.full((args.batch, 1), -100)], dim=1)
        batches.append({"input_ids": ids.to(placement.device), "targets": targets.to(placement.device),
                        "attention_mask": torch.ones_like(ids).to(placement.device)})
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, fused=cuda)
    step_tokens = args.grad_accum * args.batch * args.seq  # all processes together
    trained = int(context.sum(sum(int((b["targets"] != -100).sum()) for b in batches)))
    model.train()
    losses, timed_s, first_step_s = [], 0.0, 0.0
    for step in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize()
        tick = time.perf_counter()
        step_loss = engine.backward_step(batches, trained)
        engine.clip_grad_norm(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            timed_s += time.perf_counter() - tick
        elif step == 0:
            first_step_s = time.perf_counter() - tick
        losses.append(round(context.sum(step_loss) / trained, 4))
    timed_s = context.sum(timed_s) / context.world_size  # mean over processes (they wait for each other)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # CPU: peak RSS of the process
    peaks = [peak]
    if context.is_distributed:
        peaks = [None] * context.world_size
        tdist.all_gather_object(peaks, peak)
    if context.is_main:
        print("RESULT " + json.dumps({
            "shape": args.shape, "backend": args.backend, "mode": context.mode, "gpus": context.world_size,
            "first_step_s": round(first_step_s, 1), "grad_accum": args.grad_accum, "losses": losses,
            "tokens_per_s": step_tokens * args.steps / timed_s, "step_s": timed_s / args.steps,
            "peak_gib_max": max(peaks), "peak_gib_min": min(peaks), "first_loss": losses[0],
            "last_loss": losses[-1], "build_s": round(build_s, 1), "memory": "GPU" if cuda else "RSS",
            "trainable": sum(p.numel() for p in trainable),  # a DTensor counts its global size
        }), flush=True)
    context.finish()


# ---------------------------------------------------------------- parent: every configuration, one table
def run_one(args, shape: str, mode: str, gpus: int, backend: str) -> dict:
    grad_accum = args.big_grad_accum if shape == args.fsdp_shape and shape != args.ddp_shape else args.grad_accum
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(gpus),
               __file__, "--worker", "--shape", shape, "--mode", mode, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--seq", str(args.seq),
               "--grad-accum", str(grad_accum), "--backend", backend]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"shape": shape, "mode": mode, "gpus": gpus, "backend": backend,
                "error": f"timeout after {args.timeout}s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            result["wall_s"] = round(time.perf_counter() - started, 1)
            return result
    text = done.stderr or done.stdout
    reason = "out of memory (does not fit)" if "OutOfMemoryError" in text or "out of memory" in text \
        else (text.strip().splitlines() or ["no output"])[-1][:200]
    print(f"--- {shape}/{backend}/{mode}/{gpus} failed (exit {done.returncode}):\n{text[-3000:]}", file=sys.stderr)
    return {"shape": shape, "mode": mode, "gpus": gpus, "backend": backend, "error": reason}


def environment() -> str:
    import importlib.metadata as metadata

    import torch

    versions = [f"{name} {metadata.version(name)}" for name in ("torch", "transformers", "peft")]
    if torch.cuda.is_available():
        hardware = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        hardware = f"CPU ({os.cpu_count()} cores, gloo)"
    return f"{hardware}; Python {platform.python_version()}; " + ", ".join(versions)


def table(results: list[dict]) -> str:
    lines = ["| shape | backend | engine | GPUs | tokens/s (all) | tokens/s per GPU | scaling vs same backend "
             "on 1 GPU | vs infuse on 1 GPU | peak memory per GPU | first / last loss | time to first step |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    single = {(r["shape"], r["backend"]): r["tokens_per_s"] for r in results
              if r.get("gpus") == 1 and "tokens_per_s" in r}
    for r in results:
        engine = "1 process" if r.get("mode") == "none" else r.get("mode", "?").upper()
        name = r.get("backend", "?")
        if "tokens_per_s" not in r:
            lines.append(f"| {r['shape']} | {name} | {engine} | {r['gpus']} | failed: {r['error']} | | | | | | |")
            continue

        def efficiency(base, r=r):
            return f"{100 * r['tokens_per_s'] / (r['gpus'] * base):.0f}%" if base else "-"

        unit = "GiB" if r["memory"] == "GPU" else "GiB RSS"
        lines.append(f"| {r['shape']} | {name} | {engine} | {r['gpus']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['tokens_per_s'] / r['gpus']:,.0f} | {efficiency(single.get((r['shape'], name)))} | "
                     f"{efficiency(single.get((r['shape'], 'infuse')))} | {r['peak_gib_max']:.2f} {unit} | "
                     f"{r['first_loss']} / {r['last_loss']} | {r['build_s'] + r['first_step_s']:.0f} s |")
    return "\n".join(lines)


def plan(args, available: int) -> list[tuple[str, str, int, str]]:
    """(shape, mode, GPUs, backend) of every run: the DDP shape on each count with DDP and FSDP2,
    the FSDP shape with FSDP2 on the most GPUs."""
    counts = [n for n in (int(x) for x in args.gpus.split(",")) if n <= available] if args.gpus else \
        [n for n in (1, 2, 4, 8, 16) if n <= available]
    if not counts:
        raise SystemExit(f"no GPU count in --gpus {args.gpus} fits the {available} available")
    shapes, backends = args.shapes.split(","), args.backends.split(",")
    runs = []
    if args.ddp_shape in shapes:
        for backend in backends:
            for n in counts:
                runs += [(args.ddp_shape, "none", 1, backend)] if n == 1 else \
                    [(args.ddp_shape, "ddp", n, backend), (args.ddp_shape, "fsdp", n, backend)]
    if args.fsdp_shape in shapes and max(counts) > 1:
        runs += [(args.fsdp_shape, "fsdp", max(counts), backend) for backend in args.big_backends.split(",")]
    return list(dict.fromkeys(runs))  # --tiny: one shape for both engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="8b", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="ddp", help=argparse.SUPPRESS)
    parser.add_argument("--shapes", default="8b,70b", help="which shapes to run")
    parser.add_argument("--ddp-shape", default="8b")
    parser.add_argument("--fsdp-shape", default="70b")
    parser.add_argument("--gpus", default="", help="process counts, e.g. 1,2,4,8 (default: powers of 2 lent)")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4, help="sequences per micro-batch")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--grad-accum", type=int, default=8, help="micro-batches per step, all GPUs together")
    parser.add_argument("--backend", default="infuse", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="infuse,peft", help="infuse (fast path) and/or peft (plain)")
    parser.add_argument("--big-backends", default="infuse", help="backends of the FSDP-shape (70B) rows")
    parser.add_argument("--big-grad-accum", type=int, default=0,
                        help="micro-batches per step of the FSDP-shape rows (default: --grad-accum)")
    parser.add_argument("--json", help="also write every row (JSON lines, per-step losses included) here")
    parser.add_argument("--timeout", type=int, default=1200)
    parser.add_argument("--write", help="also write the table (markdown) to this file")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny shape, gloo, 1 and 2 processes")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    available = torch.cuda.device_count()
    if args.tiny:
        args.shapes, args.ddp_shape, args.fsdp_shape, args.gpus = "tiny", "tiny", "tiny", "1,2"
        args.seq, args.batch, args.grad_accum, args.steps, args.warmup = 128, 2, 4, 3, 1
        available = 2
    elif available == 0:
        raise SystemExit("no CUDA GPU visible; use --tiny for the CPU smoke test")
    args.big_grad_accum = args.big_grad_accum or args.grad_accum
    results = []
    for shape, mode, gpus, backend in plan(args, available):
        result = run_one(args, shape, mode, gpus, backend)
        print(json.dumps(result), flush=True)
        results.append(result)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(result) + "\n")
    command = "python bench/train_multi_gpu.py " + " ".join(sys.argv[1:])
    report = (f"LoRA r=16 alpha 16, all 7 linear layers, {'fp32' if args.tiny else 'bf16'}, gradient "
              f"checkpointing, AdamW, global batch {args.batch} x {args.grad_accum} sequences of {args.seq} "
              f"tokens per step (each of N GPUs: {args.grad_accum}/N micro-batches; FSDP-shape rows: "
              f"{args.big_grad_accum}), {args.steps} timed steps after {args.warmup} warm-up; scaling "
              f"efficiency = tokens/s / (N x 1-GPU tokens/s); time to first step = model build + the first "
              f"(warm-up) step, compilation included.\n"
              f"Hardware/versions: {environment()}\nCommand: `{command}`\n\n{table(results)}\n")
    print("\n" + report)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
