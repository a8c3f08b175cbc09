"""A CAG cache on disk: per-layer key/value tensors (safetensors) and a manifest with a fingerprint.

Loading checks what it reads: the file's size and CRC-32 against the manifest, its structure,
and the tensors' shapes; any mismatch is a CacheError naming the file, never a blank answer.

    CACHE_DIR/kv.safetensors   layers.{i}.keys / layers.{i}.values  [batch 1, kv heads, tokens, head dim]
                               prefix_ids                           [tokens] the knowledge prefix
    CACHE_DIR/manifest.json    fingerprint (what the cache depends on) + facts (sizes, timings)

The fingerprint names everything the keys/values depend on: the model (config hash, weight
files' sizes and times, a probe of its weights), dtype, chat template, instructions and
knowledge. A cache whose fingerprint differs from the current one is stale and never used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import CacheError
from infuse.files import write_atomic

KV_FILE = "kv.safetensors"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """What a cache folder holds and what it was built from."""

    fingerprint: dict[str, Any]
    knowledge_tokens: int
    model: str
    sources: list[str]
    system: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what manifest.json holds)."""
        return asdict(self)

    @classmethod
    def read(cls, cache_dir: Path) -> Manifest:
        """Read `cache_dir/manifest.json`; CacheError when there is no usable cache there."""
        path = Path(cache_dir) / MANIFEST_FILE
        if not path.exists():
            raise CacheError(
                f"No CAG cache in {cache_dir} (no {MANIFEST_FILE}). Build one with "
                f"`infuse cag build FILE... --output {cache_dir}`."
            )
        try:
            payload = json.loads(path.read_text())
            return cls(**payload)
        except (ValueError, TypeError) as error:
            raise CacheError(
                f"{path} is not a CAG manifest ({error}); rebuild the cache."
            ) from error


def model_fingerprint(model) -> dict[str, Any]:
    """Identity of a loaded model: config hash, weight files (size, mtime), a probe of its weights, dtype."""
    import torch

    config_json = model.config.to_json_string(use_diff=False)
    weights: list[list[Any]] = []
    folder = Path(
        str(getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", ""))
    )
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix in (".safetensors", ".bin", ".gguf"):
                stat = path.stat()
                weights.append([path.name, stat.st_size, int(stat.st_mtime)])
    probe = hashlib.sha256()
    parameters = list(model.named_parameters())
    # Every 8th tensor, its first 256 values: cheap, and catches other weights or a LoRA on top.
    for name, parameter in parameters[::8] + parameters[-1:]:
        head = parameter.detach().reshape(-1)[:256].to("cpu", torch.float32)
        probe.update(name.encode())
        probe.update(head.numpy().tobytes())
    return {
        "architecture": type(model).__name__,
        "config_sha256": hashlib.sha256(config_json.encode()).hexdigest(),
        "weight_files": weights,
        "weights_probe_sha256": probe.hexdigest(),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
    }


def stale_reasons(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human words for what differs between two fingerprints (empty when they match)."""
    names = {
        "format": "cache format",
        "model": "model",
        "template_sha256": "chat template",
        "knowledge_sha256": "knowledge",
        "system_sha256": "knowledge or instructions",
        "prefix_sha256": "rendered prefix",
    }
    reasons = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            if key == "model":
                model_keys = sorted(set(saved.get(key) or {}) | set(current.get(key) or {}))
                changed = [
                    k
                    for k in model_keys
                    if (saved.get(key) or {}).get(k) != (current.get(key) or {}).get(k)
                ]
                reasons.append(f"model changed ({', '.join(changed)})")
            else:
                reasons.append(f"{names.get(key, key)} changed")
    if len(reasons) > 1 and "rendered prefix changed" in reasons:
        reasons.remove("rendered prefix changed")  # a consequence of the others, not news
    return reasons


def save_cache(
    cache_dir: Path, layers: list[tuple[Any, Any]], prefix_ids: list[int], manifest: Manifest
) -> int:
    """Write the key/value tensors and the manifest atomically; return the tensor file's size in bytes."""
    import torch
    from safetensors.torch import save_file

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tensors = {"prefix_ids": torch.tensor(prefix_ids, dtype=torch.int64)}
    for index, (keys, values) in enumerate(layers):
        tensors[f"layers.{index}.keys"] = keys.detach().contiguous().cpu()
        tensors[f"layers.{index}.values"] = values.detach().contiguous().cpu()
    # The old manifest goes first: a crash mid-write leaves no manifest, never a wrong one.
    (cache_dir / MANIFEST_FILE).unlink(missing_ok=True)
    _atomic(
        cache_dir / KV_FILE,
        lambda path: save_file(tensors, str(path), metadata={"format": "infuse-cag"}),
    )
    size = (cache_dir / KV_FILE).stat().st_size
    manifest.facts["kv_bytes"] = size
    manifest.facts["kv_crc32"] = file_crc32(cache_dir / KV_FILE)
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False)
    _atomic(cache_dir / MANIFEST_FILE, lambda path: Path(path).write_text(text))
    return size


def load_layers(cache_dir: Path, manifest: Manifest, device) -> list[tuple[Any, Any]]:
    """Read the key/value tensors (memory-mapped by safetensors) onto `device`, checked.

    Raises CacheError naming the file when it is missing, truncated or damaged (wrong size,
    unreadable, shapes that disagree with the manifest, values that are not finite), so a
    damaged cache is never answered from.
    """
    import torch
    from safetensors import safe_open

    path = Path(cache_dir) / KV_FILE
    if not path.exists():
        raise CacheError(f"{path} is missing: the cache in {cache_dir} is incomplete; rebuild it.")
    damaged = (
        f"{path} is damaged ({{}}); rebuild the cache with "
        f"`infuse cag build FILE... --output {cache_dir} --rebuild`."
    )
    expected_bytes = manifest.facts.get("kv_bytes")
    size = path.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise CacheError(damaged.format(f"{size:,} bytes, the manifest says {expected_bytes:,}"))
    expected_crc = manifest.facts.get("kv_crc32")
    if expected_crc is not None and file_crc32(path) != expected_crc:
        raise CacheError(damaged.format("its checksum differs from the one saved with it"))
    layers = []
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as kv_file:
            prefix_ids = kv_file.get_tensor("prefix_ids").tolist()
            if prefix_sha256(prefix_ids) != manifest.fingerprint.get("prefix_sha256"):
                raise CacheError(
                    f"{path} does not match {Path(cache_dir) / MANIFEST_FILE}; rebuild the cache."
                )
            count = sum(1 for name in kv_file.keys() if name.endswith(".keys"))
            for index in range(count):
                keys = kv_file.get_tensor(f"layers.{index}.keys")
                values = kv_file.get_tensor(f"layers.{index}.values")
                layers.append((keys, values))
    except CacheError:
        raise
    except Exception as error:  # safetensors raises its own types for a cut or garbled file
        raise CacheError(damaged.format(f"{type(error).__name__}: {error}")) from error
    if not layers:
        raise CacheError(damaged.format("it holds no key/value layers"))
    for index, (keys, values) in enumerate(layers):
        for kind, tensor in (("keys", keys), ("values", values)):
            if tensor.dim() != 4 or tensor.shape[-2] != manifest.knowledge_tokens:
                raise CacheError(
                    damaged.format(
                        f"layers.{index}.{kind} has shape {tuple(tensor.shape)}, not "
                        f"[1, heads, {manifest.knowledge_tokens}, dim]"
                    )
                )
            # Caches saved before checksums: a sum is finite only when every value is (and
            # runs at memory speed, unlike isfinite).
            if expected_crc is None and not torch.isfinite(tensor.sum(dtype=torch.float32)):
                raise CacheError(damaged.format(f"layers.{index}.{kind} holds NaN or infinity"))
    if layers[0][0].dtype != getattr(torch, manifest.fingerprint["model"]["dtype"]):
        raise CacheError(
            f"{path} holds {layers[0][0].dtype} tensors, the manifest says otherwise; rebuild."
        )
    return layers


def file_crc32(path: Path) -> int:
    """CRC-32 of a file's bytes, read through a memory map (about 0.8 GB/s on one slow core):
    catches any damage to a saved cache, where a hash would cost 3x as long."""
    import mmap
    import zlib

    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return 0
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return zlib.crc32(mapped)


def prefix_sha256(prefix_ids: list[int]) -> str:
    """Hash of the knowledge prefix's token ids (as stored beside the tensors)."""
    return hashlib.sha256(json.dumps(list(prefix_ids)).encode()).hexdigest()


def _atomic(target: Path, write) -> None:
    write_atomic(target, write)
