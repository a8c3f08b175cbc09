"""LoRA training throughput: plain transformers + peft vs infuse's engine vs Unsloth.

Random-initialised models of the exact Llama-3.2-1B and Llama-3.1-8B shapes (configs below,
nothing downloaded), LoRA r=16 / alpha 16 / dropout 0 on all seven linear projections, bf16,
gradient checkpointing, AdamW, the same random tokens for every backend. Each backend runs in
its own subprocess (patches and peak memory never mix). Prints one table: tokens/s and peak
GPU memory per backend, with versions and hardware. Also padding vs packing on
variable-length data.

    python bench/train_throughput.py                       # 1B and 8B, all backends, on CUDA
    python bench/train_throughput.py --shapes 1b --backends hf,infuse
    python bench/train_throughput.py --tiny                # CPU smoke test of the whole script
    python bench/train_throughput.py --shapes 1b,8b --backends infuse,unsloth --qlora 8b \
        --longest 8b --write bench/results/train_h200.md   # every row of issue 20

QLoRA rows (`--qlora 8b`): the same run with the frozen weights in 4-bit NF4 (double quant,
bf16 compute) for every backend of `--qlora-backends`. Longest-sequence rows (`--longest 8b`):
batch 1, one training step per try, the GPU memory capped at `--cap-gib` (40) with
`torch.cuda.set_per_process_memory_fraction`; starting at `--longest-start` tokens the length
is halved until a step fits, then bisected between the longest fit and the shortest failure
down to `--longest-granule` tokens; each try is its own subprocess. Searches run
`--longest-parallel` at a time, spread over the visible GPUs (their timings are not reported).

Backends: hf, unsloth, infuse (the default engine: own decoder forward, fused LoRA Functions,
varlen flash attention, checkpoints offloaded to CPU), infuse-keep (same, checkpoints kept on
the GPU), infuse-legacy (the engine before that: peft modules, compiled layers).
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
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True,
               max_position_embeddings=131072, rms_norm_eps=1e-5,
               rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False,
               max_position_embeddings=131072, rms_norm_eps=1e-5,
               rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=True,
                 max_position_embeddings=4096, rms_norm_eps=1e-5),
}


# ---------------------------------------------------------------- model folder (parent)
def save_random_model(shape: str, folder: Path) -> Path:
    """Save a random-initialised Llama of `shape` (bf16) plus a small tokenizer; reuse if present."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(bos_token_id=0, eos_token_id=1, pad_token_id=2, **SHAPES[shape])
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)
    model.save_pretrained(folder)
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel()
    backend.train_from_iterator(["random tokens for a benchmark"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>", "<pad>", "<unk>"], show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>", unk_token="<unk>").save_pretrained(folder)
    del model
    return folder


# ---------------------------------------------------------------- data (same for every backend)
def fixed_batches(steps: int, batch: int, seq: int, vocab: int) -> list:
    import torch

    generator = torch.Generator().manual_seed(1234)
    return [torch.randint(3, vocab, (batch, seq), generator=generator) for _ in range(steps)]


def varlen_examples(count: int, seq: int, vocab: int):
    import random

    from infuse.train.batches import Example
    from infuse.train.examples import shift_targets

    rng = random.Random(99)
    examples = []
    for row in range(count):
        ids = [rng.randrange(3, vocab) for _ in range(rng.randint(seq // 16, seq))]
        examples.append(Example(input_ids=ids, targets=shift_targets(ids), row=row))
    return examples


# ---------------------------------------------------------------- one backend (subprocess)
def lora_settings():
    return dict(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                task_type="CAUSAL_LM")


def nf4_config():
    """QLoRA's 4-bit settings: NF4, double quantization, bf16 compute."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def build_hf(folder: Path, quant: str):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.bfloat16, "attn_implementation": "sdpa", "local_files_only": True}
    if quant == "nf4":
        kwargs.update(quantization_config=nf4_config(), device_map={"": 0})
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quant != "nf4":
        model.to(_device())
    model.config.use_cache = False
    if quant == "nf4":  # the usual transformers + peft QLoRA recipe
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(**lora_settings()))

    def step_loss(batch):
        labels = batch["targets"]  # HF shifts labels itself: give it the unshifted ids
        return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                     labels=batch["labels"] if "labels" in batch else labels).loss

    return model, step_loss


INFUSE_VARIANTS = {  # backend name -> apply_fused_kernels settings
    "infuse": dict(fast_path=True, offload=True),
    "infuse-keep": dict(fast_path=True, offload=False),  # checkpoints stay on the GPU
    "infuse-legacy": dict(fast_path=False, compile_layers=True),  # the engine before the fast path
    "infuse-nocompile": dict(fast_path=False, compile_layers=False),
}


def build_infuse(folder: Path, variant: str, quant: str):
    from infuse.train.config import RunConfig
    from infuse.train.kernels import apply_fused_kernels
    from infuse.train.model import Placement, add_lora, load_base_model, loss_sum

    config = RunConfig(data="-", output="-", lora_r=16, lora_alpha=16, gradient_checkpointing=True,
                       load_in_4bit=quant == "nf4")
    placement = Placement(device=_device(), dtype_name="bf16" if _device() == "cuda" else "fp32",
                          backend="hf", fused_kernels=True)
    model = add_lora(config, load_base_model(config, folder, placement))
    patched = apply_fused_kernels(model, **INFUSE_VARIANTS[variant])
    print(json.dumps({"patched": patched}), file=sys.stderr)

    def step_loss(batch):
        total, count = loss_sum(model, batch)
        return total / max(count, 1)

    return model, step_loss


def build_unsloth(folder: Path, seq: int, quant: str):
    from unsloth import FastLanguageModel  # noqa: I001  (unsloth must be imported first)
    import torch

    model, _tokenizer = FastLanguageModel.from_pretrained(
        str(folder), max_seq_length=seq, dtype=torch.bfloat16, load_in_4bit=quant == "nf4",
        local_files_only=True)
    settings = lora_settings()
    settings.pop("task_type")
    model = FastLanguageModel.get_peft_model(model, use_gradient_checkpointing="unsloth", random_state=0,
                                             **settings)

    def step_loss(batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                     labels=batch["labels"]).loss

    return model, step_loss


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_batches(args, vocab: int) -> list[dict]:
    """Micro-batches as dicts with input_ids, labels (HF style) and targets (shifted, infuse style)."""
    import torch

    from infuse.train.batches import BatchPlan, collate

    if args.data == "fixed":
        batches = []
        for ids in fixed_batches(args.steps + args.warmup, args.batch, args.seq, vocab):
            targets = torch.cat([ids[:, 1:], torch.full((ids.shape[0], 1), -100)], dim=1)
            batches.append({"input_ids": ids, "labels": ids.clone(), "targets": targets})
        return batches
    examples = varlen_examples(args.batch * (args.steps + args.warmup) * 2, args.seq, vocab)
    packing = args.data == "packed"
    plan = BatchPlan.build(examples, batch_size=args.batch, max_seq_len=args.seq, packing=packing, seed=0)
    batches = []
    for index in range(args.steps + args.warmup):
        batch = collate([examples[i] for i in plan.micro_batch(index)], packing=packing, pad_id=2)
        ids = batch["input_ids"]
        labels = torch.cat([torch.full((ids.shape[0], 1), -100), batch["targets"][:, :-1]], dim=1)
        batch["labels"] = labels  # same trained tokens, in HF's unshifted convention
        batches.append(batch)
    return batches


def worker(args) -> None:
    """Train `args.steps` timed steps (after warm-up) of one backend; print one JSON line."""
    if args.backend == "unsloth":
        import unsloth  # noqa: F401  (must come before transformers)
    import torch

    device = _device()
    folder = Path(args.folder)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        if args.cap_gib:  # the allocator refuses past the cap: an out-of-memory error, as on a smaller GPU
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * 2**30 / total))
    started = time.perf_counter()
    if args.backend == "hf":
        model, step_loss = build_hf(folder, args.quant)
    elif args.backend.startswith("infuse"):
        model, step_loss = build_infuse(folder, args.backend, args.quant)
    else:
        model, step_loss = build_unsloth(folder, args.seq, args.quant)
    load_s = time.perf_counter() - started
    vocab = model.get_input_embeddings().weight.shape[0]
    batches = make_batches(args, vocab)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, fused=device == "cuda")
    model.train()
    losses, tokens, timed_s = [], 0, 0.0
    for index, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        if device == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        loss = step_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= args.warmup:
            timed_s += time.perf_counter() - tick
            tokens += int(batch["attention_mask"].sum() if "attention_mask" in batch
                           else batch["input_ids"].numel())
        losses.append(round(float(loss), 4))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    if args.profile and device == "cuda":
        profile_steps(args, batches[-2:], step_loss, optimizer, device)
    print("RESULT " + json.dumps({
        "backend": args.backend, "shape": args.shape, "data": args.data, "quant": args.quant,
        "tokens_per_s": tokens / max(timed_s, 1e-9),
        "peak_gib": peak, "first_loss": losses[0], "last_loss": losses[-1], "load_s": round(load_s, 1),
        "step_s": timed_s / max(1, len(batches) - args.warmup),
        "trainable": sum(p.numel() for p in trainable),
    }), flush=True)


def profile_steps(args, batches, step_loss, optimizer, device) -> None:
    """torch.profiler over a few more steps; the kernel table goes to `args.profile`."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for batch in batches:
            loss = step_loss({k: v.to(device) for k, v in batch.items()})
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=45, max_name_column_width=70)
    Path(args.profile).write_text(f"{args.backend} {args.shape} {args.data}, {len(batches)} steps\n{table}")


# ---------------------------------------------------------------- parent: run all, print table
def environment() -> str:
    import importlib.metadata as metadata

    import torch

    versions = []
    for package in ("torch", "transformers", "peft", "triton", "unsloth"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return f"{gpu}; Python {platform.python_version()}; " + ", ".join(versions)


def run_one(args, shape: str, backend: str, data: str, folder: Path, *, quant: str = "bf16",
            seq: int | None = None, batch: int | None = None, steps: int | None = None,
            warmup: int | None = None, cap_gib: float = 0.0, gpu: int | None = None) -> dict:
    """One backend in its own subprocess; its RESULT dict, or {"error": ...} when it failed."""
    command = [sys.executable, __file__, "--worker", "--shape", shape, "--backend", backend, "--data", data,
               "--folder", str(folder), "--quant", quant,
               "--steps", str(args.steps if steps is None else steps),
               "--warmup", str(args.warmup if warmup is None else warmup),
               "--batch", str(args.batch if batch is None else batch),
               "--seq", str(args.seq if seq is None else seq), "--cap-gib", str(cap_gib)]
    if args.profile_dir and data == "fixed" and not cap_gib:
        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(Path(args.profile_dir) / f"profile-{shape}-{backend}-{quant}.txt")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if args.expandable_segments:  # the same allocator setting for every backend
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"backend": backend, "shape": shape, "data": data, "quant": quant,
                "error": [f"timed out after {args.timeout} s"]}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
            result["wall_s"] = round(time.perf_counter() - started, 1)
            return result
    tail = (done.stderr or done.stdout)[-1500:]
    if not cap_gib:
        print(f"--- {shape}/{backend}/{quant}/{data} failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
    lines = tail.strip().splitlines()
    return {"backend": backend, "shape": shape, "data": data, "quant": quant, "error": lines[-1:],
            "out_of_memory": "OutOfMemoryError" in tail or "out of memory" in tail}


def table(results: list[dict], args) -> str:
    lines = ["| shape | weights | data | backend | tokens/s | peak GPU memory | vs hf | vs unsloth | first / last loss |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def by(backend):
        return {(r["shape"], r.get("quant", "bf16"), r["data"]): r for r in results
                if r.get("backend") == backend and "tokens_per_s" in r}

    hf, unsloth = by("hf"), by("unsloth")
    for r in results:
        key = (r["shape"], r.get("quant", "bf16"), r["data"])
        head = f"| {r['shape']} | {key[1]} | {r['data']} | {r['backend']} |"
        if "tokens_per_s" not in r:
            lines.append(f"{head} failed: {r.get('error')} | | | | |")
            continue
        ratios = []
        for baseline in (hf, unsloth):
            base = baseline.get(key)
            ratios.append(f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-")
        if unsloth.get(key) and r["peak_gib"] is not None and unsloth[key]["peak_gib"]:
            ratios[1] += f" ({r['peak_gib'] / unsloth[key]['peak_gib']:.2f}x memory)"
        peak = f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "-"
        lines.append(f"{head} {r['tokens_per_s']:,.0f} | {peak} | {ratios[0]} | {ratios[1]} | "
                     f"{r['first_loss']} / {r['last_loss']} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- longest sequence that trains
def search_longest(fits, start: int, granule: int, minimum: int = 1,
                   known_fit: int | None = None) -> tuple[int | None, list[tuple[int, bool]]]:
    """The longest length (a multiple of `granule`, at most `start`) for which `fits(length)` holds.

    Halves from `start` until one fits, then bisects between the longest fit and the shortest
    failure until they are `granule` apart. Assumes `fits` is monotone (shorter fits too).
    `known_fit`: a length that fitted in an earlier run; when `start` fails the bisection starts
    from it (not tried again) instead of halving.
    Returns (longest or None when even `minimum` fails, [(length, fitted), ...] in try order).
    """
    tries: list[tuple[int, bool]] = []

    def attempt(length: int) -> bool:
        fitted = bool(fits(length))
        tries.append((length, fitted))
        return fitted

    length, failed = start, None
    while not attempt(length):
        failed = length
        if known_fit is not None and known_fit < length:
            length = known_fit
            break
        if length // 2 < max(minimum, granule):
            return None, tries
        length = max(granule, length // 2 // granule * granule)
    if failed is None:
        return length, tries
    while failed - length > granule:
        middle = (length + failed) // 2 // granule * granule
        if middle <= length:
            break
        if attempt(middle):
            length = middle
        else:
            failed = middle
    return length, tries


def longest_rows(args, shape: str, folder: Path) -> list[dict]:
    """Run every (weights, backend) search of `shape`, `--longest-parallel` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    gpus, began = _gpu_count(), time.perf_counter()
    jobs = [(quant, backend) for quant in args.longest_quants.split(",")
            for backend in args.longest_backends.split(",")]
    if _device() != "cuda":
        jobs = [(quant, backend) for quant, backend in jobs if quant == "bf16" and backend != "unsloth"]

    def search(index_job):
        index, (quant, backend) = index_job
        gpu = index % gpus if gpus > 1 else None
        results: dict[int, dict] = {}

        def fits(length: int) -> bool:
            if args.longest_budget_s and time.perf_counter() - began > args.longest_budget_s:
                raise TimeoutError(f"--longest-budget-s {args.longest_budget_s:g} spent")
            result = run_one(args, shape, backend, "fixed", folder, quant=quant, seq=length, batch=1,
                             steps=1, warmup=0, cap_gib=args.cap_gib if _device() == "cuda" else 0.0,
                             gpu=gpu)
            results[length] = result
            print(json.dumps({"longest_try": length, "backend": backend, "quant": quant,
                              "fits": "tokens_per_s" in result, "peak_gib": result.get("peak_gib"),
                              "error": result.get("error")}), flush=True)
            return "tokens_per_s" in result

        stopped = None
        try:
            longest, tries = search_longest(fits, args.longest_start, args.longest_granule,
                                            known_fit=args.longest_known_fit or None)
        except TimeoutError as error:  # what was found so far, marked as unfinished
            stopped = str(error)
            tries = [(length, "tokens_per_s" in result) for length, result in results.items()]
            longest = max((length for length, ok in tries if ok), default=None)
        best = results.get(longest, {}) if longest else {}
        return {"shape": shape, "quant": quant, "backend": backend, "longest": longest, "stopped": stopped,
                "capped": longest == args.longest_start, "peak_gib": best.get("peak_gib"),
                "step_s": best.get("step_s"), "tries": tries,
                "errors": sorted({str(r.get("error")) for r in results.values() if "error" in r})}

    with ThreadPoolExecutor(max_workers=max(1, args.longest_parallel)) as pool:
        return list(pool.map(search, enumerate(jobs)))


def longest_table(rows: list[dict], args) -> str:
    lines = [f"| shape | weights | backend | longest sequence within {args.cap_gib:g} GiB (batch 1) | "
             "vs unsloth | peak at it | step at it | tries (tokens: fit / no) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    unsloth = {(r["shape"], r["quant"]): r["longest"] for r in rows if r["backend"] == "unsloth"}
    for r in rows:
        if r["longest"] is None:
            found = "none fits"
        else:
            found = f"{'>= ' if r['capped'] else ''}{r['longest']:,}"
        base = unsloth.get((r["shape"], r["quant"]))
        ratio = f"{r['longest'] / base:.2f}x" if base and r["longest"] else "-"
        peak = f"{r['peak_gib']:.2f} GiB" if r.get("peak_gib") is not None else "-"
        step = f"{r['step_s']:.1f} s" if r.get("step_s") is not None else "-"
        tries = ", ".join(f"{length:,} {'fit' if ok else 'no'}" for length, ok in r["tries"])
        if r.get("stopped"):
            tries += f" (search stopped: {r['stopped']})"
        lines.append(f"| {r['shape']} | {r['quant']} | {r['backend']} | {found} | {ratio} | {peak} | "
                     f"{step} | {tries} |")
    return "\n".join(lines)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="1b")
    parser.add_argument("--backend", default="hf")
    parser.add_argument("--data", default="fixed", help="fixed | padded | packed (worker)")
    parser.add_argument("--quant", default="bf16", help="bf16 | nf4 (worker)")
    parser.add_argument("--shapes", default="1b,8b")
    parser.add_argument("--backends", default="hf,infuse,unsloth")
    parser.add_argument("--varlen", default="", help="shapes to also run padding vs packing on ('' = none)")
    parser.add_argument("--qlora", default="", help="shapes to also run in 4-bit NF4 (QLoRA), e.g. 8b")
    parser.add_argument("--qlora-backends", default="hf,infuse,unsloth")
    parser.add_argument("--longest", default="", help="shapes to search the longest trainable sequence of")
    parser.add_argument("--longest-backends", default="infuse,unsloth")
    parser.add_argument("--longest-quants", default="bf16,nf4")
    parser.add_argument("--longest-start", type=int, default=131072)
    parser.add_argument("--longest-granule", type=int, default=8192)
    parser.add_argument("--longest-parallel", type=int, default=2, help="searches at a time (all GPUs)")
    parser.add_argument("--longest-known-fit", type=int, default=0,
                        help="a length that fitted before: bisect from it when the start fails")
    parser.add_argument("--longest-budget-s", type=float, default=0.0,
                        help="start no try after this many seconds; report what was found (0: none)")
    parser.add_argument("--cap-gib", type=float, default=40.0, help="GPU memory cap of the longest search")
    parser.add_argument("--expandable-segments", action="store_true",
                        help="PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True for every backend")
    parser.add_argument("--budget-s", type=float, default=0.0,
                        help="skip the throughput runs not started after this many seconds (0: none)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--models", default="/tmp/bench-models")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--write", help="also write the report (markdown) to this file")
    parser.add_argument("--json", help="also write every row as JSON to this file")
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--profile-dir", help="write a torch.profiler kernel table per backend here")
    parser.add_argument("--varlen-backends", default="hf,infuse",
                        help="backends of the padding vs packing rows (infuse also runs packed)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny shape, seq 128")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.tiny:
        args.shapes, args.varlen, args.seq, args.batch, args.steps, args.warmup = "tiny", "tiny", 128, 2, 3, 1
        args.backends = ",".join(b for b in args.backends.split(",") if b != "unsloth")
        args.qlora = "tiny" if args.qlora else ""
        if args.longest:
            args.longest, args.longest_start, args.longest_granule = "tiny", 512, 128
    if _device() != "cuda" and args.qlora:
        print("QLoRA rows need CUDA and bitsandbytes: skipped on this machine", file=sys.stderr)
        args.qlora = ""
    results, longest, began = [], [], time.perf_counter()
    shapes = list(dict.fromkeys(filter(None, [*args.shapes.split(","), *args.qlora.split(","),
                                              *args.longest.split(",")])))
    for shape in shapes:
        folder = save_random_model(shape, Path(args.models) / shape)
        runs = []
        if shape in args.shapes.split(","):
            runs += [(backend, "fixed", "bf16") for backend in args.backends.split(",")]
        if shape in args.qlora.split(","):
            runs += [(backend, "fixed", "nf4") for backend in args.qlora_backends.split(",")]
        if shape in args.varlen.split(","):
            for backend in args.varlen_backends.split(","):
                runs.append((backend, "padded", "bf16"))
                if backend.startswith("infuse"):
                    runs.append((backend, "packed", "bf16"))
        for backend, data, quant in runs:
            if args.budget_s and time.perf_counter() - began > args.budget_s:
                results.append({"backend": backend, "shape": shape, "data": data, "quant": quant,
                                "error": [f"skipped: past --budget-s {args.budget_s:g}"]})
                continue
            result = run_one(args, shape, backend, data, folder, quant=quant)
            print(json.dumps(result), flush=True)
            results.append(result)
        if shape in args.longest.split(","):
            longest += longest_rows(args, shape, folder)
    command = "python bench/train_throughput.py " + " ".join(sys.argv[1:])
    report = (f"LoRA r=16 alpha 16, all 7 linear layers, gradient checkpointing, AdamW, batch "
              f"{args.batch} x seq {args.seq}, {args.steps} timed steps after {args.warmup} warm-up; "
              f"weights bf16, or nf4 = QLoRA (4-bit NF4, double quant, bf16 compute).\n"
              f"Hardware/versions: {environment()}\nCommand: `{command}`\n\n{table(results, args)}\n")
    if longest:
        known = (f" (bisected from {args.longest_known_fit:,}, which fitted in an earlier run, when "
                 f"the start failed)" if args.longest_known_fit else "")
        allocator = "; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True for every backend" \
            if args.expandable_segments else ""
        report += (f"\nLongest sequence that trains (batch 1, one step, GPU memory capped at "
                   f"{args.cap_gib:g} GiB; halved from {args.longest_start:,} then bisected to "
                   f"{args.longest_granule:,} tokens{known}; each try its own process{allocator}):\n\n"
                   f"{longest_table(longest, args)}\n")
    print("\n" + report)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(report, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"throughput": results, "longest": longest}, indent=1))


if __name__ == "__main__":
    main()
