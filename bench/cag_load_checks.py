"""What checking a CAG cache on load costs: `infuse.cag.store.load_layers` (size, CRC-32 of the
file, structure, shapes) beside reading the same tensors with safetensors and no checks.

safetensors maps the file: "unchecked" returns before reading a byte, the data is read when
the first question attends to it. "unchecked + read" touches every value once (a sum), what
the first answer pays anyway; the fair baseline for a cache that is used.

A cache of SmolLM2-135M's shape (30 layers, 3 key/value heads of 64, float32: 46 KiB a token),
random values, for a few knowledge sizes up to what its 8k context holds. Each load is timed
`--repeats` times from the page cache (the file was just written); the median is shown.

    PYTHONPATH=$PWD python bench/cag_load_checks.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import safetensors
import torch
from safetensors import safe_open

from infuse.cag.store import KV_FILE, Manifest, load_layers, prefix_sha256, save_cache

LAYERS, KV_HEADS, HEAD_DIM = 30, 3, 64


def unchecked_load(cache_dir: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The baseline: the same tensors read with safetensors, nothing checked."""
    layers = []
    with safe_open(str(cache_dir / KV_FILE), framework="pt", device="cpu") as kv_file:
        count = sum(1 for name in kv_file.keys() if name.endswith(".keys"))
        for index in range(count):
            layers.append(
                (kv_file.get_tensor(f"layers.{index}.keys"), kv_file.get_tensor(f"layers.{index}.values"))
            )
    return layers


def touch(layers) -> float:
    """Read every value once (what the first answer over the cache does)."""
    return sum(float(keys.sum() + values.sum()) for keys, values in layers)


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default="1024,4096,7000", help="Knowledge sizes in tokens.")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, safetensors {safetensors.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"{'tokens':>7} {'MiB':>7} {'unchecked s':>12} {'unchecked+read s':>17} "
        f"{'checked s':>10} {'vs read s':>11}"
    )
    for tokens in (int(value) for value in args.tokens.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            cache_dir = Path(folder)
            layers = [
                (torch.randn(1, KV_HEADS, tokens, HEAD_DIM), torch.randn(1, KV_HEADS, tokens, HEAD_DIM))
                for _ in range(LAYERS)
            ]
            prefix = list(range(tokens))
            manifest = Manifest(
                fingerprint={"prefix_sha256": prefix_sha256(prefix), "model": {"dtype": "float32"}},
                knowledge_tokens=tokens,
                model="smollm2-shaped",
                sources=[],
                system="",
            )
            size = save_cache(cache_dir, layers, prefix, manifest)
            del layers
            unchecked = median_seconds(lambda d=cache_dir: unchecked_load(d), args.repeats)
            read = median_seconds(lambda d=cache_dir: touch(unchecked_load(d)), args.repeats)
            checked = median_seconds(
                lambda d=cache_dir, m=manifest: load_layers(d, m, "cpu"), args.repeats
            )
        print(
            f"{tokens:>7} {size / 2**20:>7.0f} {unchecked:>12.3f} {read:>17.3f} "
            f"{checked:>10.3f} {checked - read:>+11.3f}"
        )


if __name__ == "__main__":
    main()
