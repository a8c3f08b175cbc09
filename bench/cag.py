"""CAG against no cache and RAG top-5: time to first token and total answer time, in one run.

A random-initialised model of Llama-3.1-8B's shape (timing needs no trained weights), bf16 on
CUDA, batch 1. For each knowledge size: a 20-token question and a 64-token greedy answer

    no cache        prefill knowledge + question every time, then decode
    question alone  the question's prefill on an empty cache (the floor CAG aims at)
    CAG plain       transformers as is: DynamicCache holding the knowledge, SDPA, cropped back
    CAG infuse      StaticCache holding the knowledge + packed-GQA SDPA (infuse.llm.attention)
    CAG from disk   the same, the cache first loaded from safetensors (infuse.cag.store)
    RAG top-5       prefill of 5 chunks of 256 tokens + question, then decode

    PYTHONPATH=$PWD python bench/cag.py            # the H100 run
    PYTHONPATH=$PWD python bench/cag.py --tiny     # a tiny shape on CPU, to check the script

Imports only torch, transformers, safetensors and infuse modules that need nothing else.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, StaticCache

from infuse.cag.store import Manifest, load_layers, prefix_sha256, save_cache
from infuse.llm.attention import use_packed_gqa_attention
from infuse.llm.decoding import forward_kwargs


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
    """Prefill `ids` onto `cache`, then greedy-decode; return (time to first token, total) seconds."""
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        next_id = forward(model, ids, cache).argmax(-1, keepdim=True)
        sync(device)
        first = time.perf_counter() - started
        if decode:
            for _ in range(answer_tokens - 1):
                next_id = forward(model, next_id, cache).argmax(-1, keepdim=True)
    sync(device)
    return first, time.perf_counter() - started


def rewind(cache, length: int) -> None:
    """Crop a cache back to `length` tokens (a static cache only moves its write position)."""
    extra = int(cache.get_seq_length()) - length
    if extra <= 0:
        return
    for layer in cache.layers:
        if isinstance(getattr(layer, "cumulative_length", None), torch.Tensor):
            layer.cumulative_length.fill_(length)  # StaticLayer (5.17 has no StaticLayer.crop)
        else:
            layer.crop(-extra)


def measure(run, repeats: int) -> tuple[float, float]:
    """Median time to first token over `repeats` runs, and one full answer's total, after a full warm-up answer."""
    run(decode=True)  # warm-up of prefill and decode shapes (the allocator's first cudaMallocs too)
    firsts = [run(decode=False)[0] for _ in range(repeats)]
    total = run(decode=True)[1]
    return statistics.median(firsts), total


def static_cache_with(model, layers, length: int, room: int, device: str):
    """A StaticCache sized for knowledge + question + answer, holding `layers`' first `length` tokens."""
    cache = StaticCache(config=model.config, max_cache_len=length + room)
    keys = layers[0][0]
    cache.early_initialization(1, keys.shape[1], keys.shape[-1], keys.dtype, torch.device(device))
    for layer, (layer_keys, layer_values) in zip(cache.layers, layers):
        layer.keys[:, :, :length].copy_(layer_keys[:, :, :length])
        layer.values[:, :, :length].copy_(layer_values[:, :, :length])
        layer.cumulative_length.fill_(length)
    return cache


def bench_size(model, size: int, args, device: str, disk: Path) -> dict:
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(size)
    knowledge = torch.randint(10, vocab, (1, size), generator=generator).to(device)
    question = torch.randint(10, vocab, (1, args.question), generator=generator).to(device)
    chunks = knowledge[:, : args.rag_chunks * args.chunk_tokens]  # same text, retrieval not timed
    room = args.question + args.answer + 8
    row: dict = {"size": size}

    def fresh(ids):
        return lambda decode: answer(
            model, ids, DynamicCache(config=model.config), args.answer, device, decode=decode
        )

    full = torch.cat([knowledge, question], dim=1)
    row["no_cache"] = measure(fresh(full), args.repeats)
    row["question_alone"] = measure(fresh(question), args.repeats)
    row["rag"] = measure(fresh(torch.cat([chunks, question], dim=1)), args.repeats)

    # CAG plain transformers: DynamicCache + SDPA, cropped back after each question.
    model.set_attn_implementation("sdpa")
    dynamic = DynamicCache(config=model.config)
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        forward(model, knowledge, dynamic)
    sync(device)
    row["build_s"] = time.perf_counter() - started

    def cag_plain(decode):
        try:
            return answer(model, question, dynamic, args.answer, device, decode=decode)
        finally:
            rewind(dynamic, size)

    row["cag_plain"] = measure(cag_plain, args.repeats)
    layers = [(layer.keys, layer.values) for layer in dynamic.layers]

    # CAG infuse: static cache + packed-GQA attention.
    use_packed_gqa_attention(model)
    static = static_cache_with(model, layers, size, room, device)

    def cag_infuse(decode):
        try:
            return answer(model, question, static, args.answer, device, decode=decode)
        finally:
            rewind(static, size)

    row["cag_infuse"] = measure(cag_infuse, args.repeats)

    # CAG from disk: safetensors written once, then load + question.
    ids = knowledge[0].tolist()
    manifest = Manifest(
        fingerprint={
            "prefix_sha256": prefix_sha256(ids),
            "model": {"dtype": str(layers[0][0].dtype).removeprefix("torch.")},
        },
        knowledge_tokens=size,
        model="random-llama",
        sources=[],
        system="",
    )
    started = time.perf_counter()
    kv_bytes = save_cache(disk, layers, ids, manifest)
    row["save_s"], row["kv_gib"] = time.perf_counter() - started, kv_bytes / 2**30
    static = dynamic = layers = None  # free GPU memory before the disk run

    def cag_disk(decode):
        sync(device)
        started = time.perf_counter()
        loaded = load_layers(disk, manifest, device)
        cache = static_cache_with(model, loaded, size, room, device)
        del loaded
        sync(device)
        load_s = time.perf_counter() - started
        first, total = answer(model, question, cache, args.answer, device, decode=decode)
        row["load_s"] = load_s
        return first + load_s, total + load_s

    row["cag_disk"] = measure(cag_disk, 1)
    model.set_attn_implementation("sdpa")
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rag-chunks", type=int, default=5)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument(
        "--disk", default=None, help="folder for the on-disk cache (default: a temp folder)"
    )
    args = parser.parse_args()

    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    sizes = [
        int(size)
        for size in (
            args.sizes or ("512,1024,2048" if args.tiny else "4096,16384,32768,65536")
        ).split(",")
    ]
    config = tiny_config() if args.tiny else llama_8b_config()
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    started = time.perf_counter()
    torch.set_default_dtype(dtype)  # build the weights in bf16 directly: no fp32 copy of 8B
    with torch.device(device):
        model = LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    print(f"model built in {time.perf_counter() - started:.1f} s", flush=True)

    rows = []
    with tempfile.TemporaryDirectory(dir=args.disk) as folder:
        for size in sizes:
            rows.append(bench_size(model, size, args, device, Path(folder)))
            print(f"done {size}", flush=True)
    print_table(rows, args, device, dtype, config)


def print_table(rows, args, device, dtype, config) -> None:
    hardware = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu"
    shape = "tiny Llama" if args.tiny else "Llama-3.1-8B shape (random init)"
    print(
        f"\n{shape}, {dtype}, batch 1, question {args.question} tokens, answer {args.answer} tokens, "
        f"RAG top-{args.rag_chunks} x {args.chunk_tokens} tokens; median TTFT of {args.repeats} after a warm-up"
    )
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, {hardware}, "
        f"{config.num_hidden_layers} layers\n"
    )
    print("time to first token (s)\n")
    print(
        "| knowledge | no cache | RAG top-5 | question alone | CAG plain | CAG infuse | CAG from disk (load) | infuse / question alone | plain / question alone | TTFT speed-up vs no cache |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        q = row["question_alone"][0]
        print(
            f"| {row['size']:,} | {row['no_cache'][0]:.4f} | {row['rag'][0]:.4f} | {q:.4f} | "
            f"{row['cag_plain'][0]:.4f} | {row['cag_infuse'][0]:.4f} | {row['cag_disk'][0]:.3f} ({row['load_s']:.3f}) | "
            f"{row['cag_infuse'][0] / q:.2f} | {row['cag_plain'][0] / q:.2f} | {row['no_cache'][0] / row['cag_infuse'][0]:.1f}x |"
        )
    print("\ntotal for the whole answer (s)\n")
    print(
        "| knowledge | no cache | RAG top-5 | CAG plain | CAG infuse | CAG from disk | speed-up vs no cache (infuse) | KV GiB | prefill once (s) | save (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['size']:,} | {row['no_cache'][1]:.3f} | {row['rag'][1]:.3f} | {row['cag_plain'][1]:.3f} | "
            f"{row['cag_infuse'][1]:.3f} | {row['cag_disk'][1]:.3f} | {row['no_cache'][1] / row['cag_infuse'][1]:.1f}x | "
            f"{row['kv_gib']:.2f} | {row['build_s']:.3f} | {row['save_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
