"""CAG against no cache and RAG top-5: time to first token and total answer time, in one run.

A random-initialised model of Llama-3.1-8B's shape (timing needs no trained weights), bf16 on
CUDA, batch 1. For each knowledge size: a 20-token question and a 64-token greedy answer

    no cache        prefill knowledge + question every time, then decode (eager, DynamicCache)
    no cache, graph the same prefill, its cache copied into a static one, CUDA-graph decoding
    question alone  the question's prefill on an empty cache (the floor CAG aims at)
    RAG top-5       prefill of 5 chunks of 256 tokens + question, then decode (eager; and graph)
    CAG plain       transformers as is: DynamicCache holding the knowledge, SDPA, cropped back
    CAG infuse      infuse.llm.static_prefix: static cache holding the knowledge, split-KV
                    attention (infuse.llm.attention), CUDA-graph decode step, rewound after
    CAG from disk   the same, the knowledge first loaded from safetensors (infuse.cag.store)

    PYTHONPATH=$PWD python bench/cag.py            # the H100 run
    PYTHONPATH=$PWD python bench/cag.py --tiny     # a tiny shape on CPU, to check the script

Imports only torch, transformers, safetensors and infuse modules that need nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from infuse.cag.store import Manifest, load_layers, prefix_sha256, save_cache
from infuse.llm.attention import ATTENTION_NAME as ATTENTION
from infuse.llm.attention import split_kv_backend, use_packed_gqa_attention
from infuse.llm.decoding import forward_kwargs
from infuse.llm.static_prefix import StaticPrefixCache


def llama_8b_config() -> LlamaConfig:
    """Llama-3.1-8B's shape (hidden 4096, 32 layers, 32 query / 8 KV heads, 128k vocab)."""
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )


def tiny_config() -> LlamaConfig:
    """A tiny shape with the same head grouping, for a CPU check of the script."""
    return LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward(model, ids, cache):
    return model(input_ids=ids, **forward_kwargs(model, cache)).logits[:, -1, :]


def answer(
    model, ids, cache, answer_tokens: int, device: str, *, decode: bool
) -> tuple[float, float]:
    """Prefill `ids` onto `cache`, then greedy-decode eagerly; return (time to first token, total) s."""
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        next_id = forward(model, ids, cache).argmax(-1, keepdim=True)
        next_id.item()
        first = time.perf_counter() - started
        if decode:
            for _ in range(answer_tokens - 1):
                next_id = forward(model, next_id, cache).argmax(-1, keepdim=True)
                next_id.item()  # a real loop looks at every token (stop strings, streaming)
    sync(device)
    return first, time.perf_counter() - started


def engine_answer(
    engine,
    question: list[int],
    answer_tokens: int,
    device: str,
    *,
    decode: bool,
    tokens: list | None = None,
) -> tuple[float, float]:
    """CAG with infuse's engine: prefill the question after the knowledge, then graph steps; rewind."""
    sync(device)
    started = time.perf_counter()
    try:
        token = int(engine.prefill(question).argmax())
        first = time.perf_counter() - started
        produced = [token]
        if decode:
            for _ in range(answer_tokens - 1):
                token = int(engine.step(token).argmax())
                produced.append(token)
        if tokens is not None:
            tokens[:] = produced
        sync(device)
        return first, time.perf_counter() - started
    finally:
        engine.rewind()


def graph_answer(model, engine, ids, answer_tokens: int, device: str) -> tuple[float, float]:
    """No cache kept: prefill `ids` on a fresh DynamicCache, copy it into `engine`, graph-decode."""
    sync(device)
    started = time.perf_counter()
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        logits = forward(model, ids, cache)
    engine.load_prefix([(layer.keys, layer.values) for layer in cache.layers])
    del cache
    token = int(logits.argmax())
    first = time.perf_counter() - started
    for _ in range(answer_tokens - 1):
        token = int(engine.step(token).argmax())
    sync(device)
    return first, time.perf_counter() - started


def rewind(cache, length: int) -> None:
    """Crop a DynamicCache back to `length` tokens."""
    extra = int(cache.get_seq_length()) - length
    if extra > 0:
        cache.crop(-extra)


def measure(run, repeats: int, totals: int = 1) -> tuple[float, float]:
    """Median TTFT over `repeats` runs and median total of `totals` answers, after a warm-up answer."""
    run(decode=True)  # warm-up of prefill and decode shapes (the allocator's first cudaMallocs too)
    firsts = [run(decode=False)[0] for _ in range(repeats)]
    total = statistics.median(run(decode=True)[1] for _ in range(totals))
    return statistics.median(firsts), total


def relative_error(got, expected) -> float:
    got, expected = got.float(), expected.float()
    return ((got - expected).norm() / expected.norm()).item()


def attention(model, name: str) -> None:
    """Switch the eager attention: "sdpa" (transformers as is) or infuse's (static engine runs)."""
    try:
        model.set_attn_implementation(name)
    except (AttributeError, ValueError):
        model.config._attn_implementation = name


def bench_size(model, size: int, args, device: str, disk: Path, alone_engine) -> dict:
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(size)
    knowledge = torch.randint(10, vocab, (1, size), generator=generator).to(device)
    question = torch.randint(10, vocab, (1, args.question), generator=generator).to(device)
    chunks = knowledge[:, : args.rag_chunks * args.chunk_tokens]  # same text, retrieval not timed
    rag_ids = torch.cat([chunks, question], dim=1)
    full = torch.cat([knowledge, question], dim=1)
    ids = question[0].tolist()
    room = args.question + args.answer + 8
    row: dict = {"size": size}

    def fresh(prompt):
        return lambda decode: answer(
            model, prompt, DynamicCache(config=model.config), args.answer, device, decode=decode
        )

    attention(model, "sdpa")
    row["no_cache"] = measure(fresh(full), args.slow_repeats)
    row["rag"] = measure(fresh(rag_ids), args.repeats)

    # The knowledge prefilled once: a DynamicCache for transformers as is (CAG plain), copied
    # into infuse's static engine (CAG infuse); its decode step and prefill buckets captured once.
    dynamic = DynamicCache(config=model.config)
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        forward(model, knowledge, dynamic)
    sync(device)
    row["build_s"] = time.perf_counter() - started
    engine = StaticPrefixCache.from_layers(
        model, [(layer.keys, layer.values) for layer in dynamic.layers], room=room
    )
    sync(device)
    started = time.perf_counter()
    engine.warm_up()
    sync(device)
    row["capture_s"] = time.perf_counter() - started
    if engine.graph_error:
        print(f"graph capture failed at {size}: {engine.graph_error}", flush=True)
    buckets = engine.prefill_buckets

    def cag_plain(decode):
        try:
            return answer(model, question, dynamic, args.answer, device, decode=decode)
        finally:
            rewind(dynamic, size)

    def infuse(decode, graph_prefill=True):
        engine.prefill_buckets = buckets if graph_prefill else ()
        try:
            return engine_answer(engine, ids, args.answer, device, decode=decode)
        finally:
            engine.prefill_buckets = buckets

    # Time to first token: the five ways to prefill the question, interleaved round by round so
    # that they all see the same machine (eager timings drift with the host CPU).
    variants = {
        "question_alone": ("sdpa", fresh(question)),
        "question_alone_graph": (
            ATTENTION,
            lambda decode: engine_answer(alone_engine, ids, args.answer, device, decode=decode),
        ),
        "cag_plain": ("sdpa", cag_plain),
        "cag_infuse_eager": (ATTENTION, lambda decode: infuse(decode, graph_prefill=False)),
        "cag_infuse": (ATTENTION, infuse),
    }
    firsts: dict[str, list[float]] = {name: [] for name in variants}
    for implementation, run in variants.values():
        attention(model, implementation)
        run(decode=True)  # warm-up: shapes, allocator, graphs
    for _round in range(args.repeats):
        for name, (implementation, run) in variants.items():
            attention(model, implementation)
            firsts[name].append(run(decode=False)[0])
    attention(model, "sdpa")
    row["question_alone"] = (statistics.median(firsts["question_alone"]), fresh(question)(True)[1])
    row["cag_plain"] = (statistics.median(firsts["cag_plain"]), cag_plain(True)[1])
    with torch.inference_mode():
        plain_logits = forward(model, question, dynamic).float()
    rewind(dynamic, size)
    dynamic = None  # one copy of the knowledge on the GPU from here
    attention(model, ATTENTION)
    row["question_alone_graph"] = (statistics.median(firsts["question_alone_graph"]), None)
    row["cag_infuse_eager"] = (statistics.median(firsts["cag_infuse_eager"]), None)
    totals = [infuse(True)[1] for _ in range(3)]
    row["cag_infuse"] = (statistics.median(firsts["cag_infuse"]), statistics.median(totals))

    # Checks: first-token logits against transformers' own path; graphs against eager runs.
    infuse_logits = engine.prefill(ids).float()
    engine.rewind()
    row["logits_error_vs_plain"] = relative_error(infuse_logits, plain_logits)
    row["same_first_token"] = bool(infuse_logits.argmax() == plain_logits.argmax())
    engine.prefill_buckets = ()
    eager_logits = engine.prefill(ids).float()
    engine.rewind()
    engine.prefill_buckets = buckets
    row["graph_prefill_error_vs_eager"] = relative_error(infuse_logits, eager_logits)
    # How far two exact paths drift apart in bf16 anyway: no cache against CAG plain.
    attention(model, "sdpa")
    with torch.inference_mode():
        full_logits = forward(model, full, DynamicCache(config=model.config)).float()
    attention(model, ATTENTION)
    row["no_cache_error_vs_plain"] = relative_error(full_logits, plain_logits)
    graphed, eager = [], []
    engine_answer(engine, ids, args.answer, device, decode=True, tokens=graphed)
    engine.cuda_graph, graph_on = False, engine.cuda_graph
    engine_answer(engine, ids, args.answer, device, decode=True, tokens=eager)
    engine.cuda_graph = graph_on
    row["graph_tokens_equal_eager"] = graphed == eager
    row["graph_error"] = engine.graph_error

    # Saved once: the disk run below reloads it.
    manifest = Manifest(
        fingerprint={
            "prefix_sha256": prefix_sha256(knowledge[0].tolist()),
            "model": {"dtype": str(engine.cache.layers[0].keys.dtype).removeprefix("torch.")},
        },
        knowledge_tokens=size,
        model="random-llama",
        sources=[],
        system="",
    )
    started = time.perf_counter()
    kv_bytes = save_cache(disk, engine.prefix_layers(), knowledge[0].tolist(), manifest)
    row["save_s"], row["kv_gib"] = time.perf_counter() - started, kv_bytes / 2**30

    # No cache kept, but the same fast decoding: what CAG saves beyond the decode loop.
    attention(model, "sdpa")
    row["no_cache_graph"] = graph_answer(model, engine, full, args.answer, device)
    row["rag_graph"] = graph_answer(model, engine, rag_ids, args.answer, device)
    attention(model, ATTENTION)

    def cag_disk(decode):
        sync(device)
        started = time.perf_counter()
        # What CagSession.open does on the fast path: read to host memory, copy per layer.
        engine.load_prefix(load_layers(disk, manifest, "cpu"))
        sync(device)
        load_s = time.perf_counter() - started
        first, total = engine_answer(engine, ids, args.answer, device, decode=decode)
        row["load_s"] = load_s
        return first + load_s, total + load_s

    row["cag_disk"] = measure(cag_disk, 1)
    engine = None
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tiny", action="store_true", help="tiny shape, CPU, small sizes: checks the script"
    )
    parser.add_argument("--sizes", default=None, help="knowledge sizes in tokens, comma-separated")
    parser.add_argument("--question", type=int, default=20)
    parser.add_argument("--answer", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9, help="TTFT runs of the fast variants")
    parser.add_argument("--slow-repeats", type=int, default=3, help="TTFT runs without a cache")
    parser.add_argument("--rag-chunks", type=int, default=5)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--no-attention-check", action="store_true")
    parser.add_argument(
        "--disk", default=None, help="folder for the on-disk cache (default: a temp folder)"
    )
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--write", default=None, help="also write the tables (markdown) to this file")
    args = parser.parse_args()

    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    sizes = [
        int(size)
        for size in (
            args.sizes or ("512,1024,2048" if args.tiny else "4096,16384,32768,65536")
        ).split(",")
    ]
    if device == "cuda" and not args.no_attention_check:
        from cag_attention import run_checks

        run_checks()
    config = tiny_config() if args.tiny else llama_8b_config()
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    started = time.perf_counter()
    torch.set_default_dtype(dtype)  # build the weights in bf16 directly: no fp32 copy of 8B
    with torch.device(device):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    use_packed_gqa_attention(model)  # registers infuse's attention; each run picks its own
    print(f"model built in {time.perf_counter() - started:.1f} s", flush=True)

    # The question alone through the same static engine (empty prefix, graph prefill).
    alone_engine = StaticPrefixCache(model, args.question + args.answer + 8)
    alone_engine.warm_up()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.disk) as folder:
        for size in sizes:
            started = time.perf_counter()
            rows.append(bench_size(model, size, args, device, Path(folder), alone_engine))
            print(f"done {size} in {time.perf_counter() - started:.0f} s: {rows[-1]}", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    text = print_table(rows, args, device, dtype, config)
    if args.write:
        command = "PYTHONPATH=$PWD python bench/cag.py " + " ".join(sys.argv[1:])
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(f"Command: `{command}`\n{text}\n", encoding="utf-8")


def print_table(rows, args, device, dtype, config) -> str:
    """Print the tables (and return them as one markdown text)."""
    lines: list[str] = []

    def emit(text: str) -> None:
        lines.append(text)

    hardware = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    shape = "tiny Llama" if args.tiny else "Llama-3.1-8B shape (random init)"
    emit(
        f"\n{shape}, {dtype}, batch 1, question {args.question} tokens, answer {args.answer} tokens, "
        f"RAG top-{args.rag_chunks} x {args.chunk_tokens} tokens; median TTFT of {args.repeats} "
        f"({args.slow_repeats} without cache) after a warm-up"
    )
    emit(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {hardware}, "
        f"{config.num_hidden_layers} layers, split-KV kernel: {split_kv_backend()}, "
        f"cpus {os.cpu_count()}\n"
    )
    emit("time to first token (s): eager prefill against eager, graph prefill against graph\n")
    emit(
        "| knowledge | no cache | RAG top-5 | question alone | CAG plain | CAG infuse, eager | "
        "infuse eager / question alone | plain / question alone | question alone, graph | "
        "CAG infuse, graph | infuse graph / question alone graph | CAG from disk (load) | "
        "TTFT speed-up vs no cache |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        q, qg = row["question_alone"][0], row["question_alone_graph"][0]
        infuse_eager, infuse = row["cag_infuse_eager"][0], row["cag_infuse"][0]
        emit(
            f"| {row['size']:,} | {row['no_cache'][0]:.4f} | {row['rag'][0]:.4f} | {q:.4f} | "
            f"{row['cag_plain'][0]:.4f} | {infuse_eager:.4f} | {infuse_eager / q:.2f} | "
            f"{row['cag_plain'][0] / q:.2f} | {qg:.4f} | {infuse:.4f} | {infuse / qg:.2f} | "
            f"{row['cag_disk'][0]:.3f} ({row['load_s']:.3f}) | "
            f"{row['no_cache'][0] / infuse:.0f}x |"
        )
    emit("\ntotal for the whole answer (s); decode = ms per answer token after the first\n")
    emit(
        "| knowledge | no cache | no cache, graph decode | RAG top-5 | RAG, graph decode | "
        "CAG plain | CAG infuse | CAG from disk | decode plain / infuse (ms) | "
        "speed-up vs no cache | vs no cache, graph decode |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    steps = args.answer - 1
    for row in rows:
        plain_ms = (row["cag_plain"][1] - row["cag_plain"][0]) / steps * 1e3
        infuse_ms = (row["cag_infuse"][1] - row["cag_infuse"][0]) / steps * 1e3
        emit(
            f"| {row['size']:,} | {row['no_cache'][1]:.3f} | {row['no_cache_graph'][1]:.3f} | "
            f"{row['rag'][1]:.3f} | {row['rag_graph'][1]:.3f} | {row['cag_plain'][1]:.3f} | "
            f"{row['cag_infuse'][1]:.3f} | {row['cag_disk'][1]:.3f} | "
            f"{plain_ms:.1f} / {infuse_ms:.1f} | {row['no_cache'][1] / row['cag_infuse'][1]:.1f}x | "
            f"{row['no_cache_graph'][1] / row['cag_infuse'][1]:.1f}x |"
        )
    emit("\nchecks and one-off costs\n")
    emit(
        "| knowledge | first-token logits: infuse vs plain | no cache vs plain | "
        "graph vs eager prefill | same first token | graph tokens == eager tokens | KV GiB | "
        "prefill once (s) | save (s) | graph capture (s) |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        emit(
            f"| {row['size']:,} | {row['logits_error_vs_plain']:.1e} | "
            f"{row['no_cache_error_vs_plain']:.1e} | {row['graph_prefill_error_vs_eager']:.1e} | "
            f"{row['same_first_token']} | "
            f"{row['graph_tokens_equal_eager']} | {row['kv_gib']:.2f} | {row['build_s']:.3f} | "
            f"{row['save_s']:.2f} | {row['capture_s']:.2f} |"
        )

    steps = args.answer - 1
    emit("\nissue 20 targets (8B shape): decode <= 7 ms/token at 4k and <= 8 ms at 64k; graph TTFT "
          "<= 1.5x the graph-decoded question alone\n")
    emit("| knowledge | decode ms/token, CAG infuse | target | met | graph TTFT / question alone, graph | "
          "target | met |")
    emit("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        decode_ms = (row["cag_infuse"][1] - row["cag_infuse"][0]) / steps * 1e3
        target_ms = 7.0 if row["size"] <= 4096 else 8.0  # the issue names 4k (7 ms) and 64k (8 ms)
        ratio = row["cag_infuse"][0] / row["question_alone_graph"][0]
        emit(f"| {row['size']:,} | {decode_ms:.2f} | <= {target_ms:.1f} | {'yes' if decode_ms <= target_ms else 'no'} | "
              f"{ratio:.2f} | <= 1.50 | {'yes' if ratio <= 1.5 else 'no'} |")
    text = "\n".join(lines)
    print(text)
    return text

if __name__ == "__main__":
    main()
