"""Multi-process training: same adapter as one process, every row once per epoch, resume across counts.

The slow tests launch 2 real processes (torchrun, gloo backend, CPU) on the tiny model.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infuse.errors import ConfigError
from infuse.train.batches import BatchPlan
from infuse.train.distributed import (
    DistContext,
    choose_mode,
    per_rank_grad_accum,
    rank_micro_batches,
    read_launch,
    start,
    weight_bytes,
)
from infuse.train.examples import Example

ROOT = Path(__file__).resolve().parents[2]
TWO = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}


# ---------------------------------------------------------------- data order (no processes)
@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.parametrize("world_size, grad_accum", [(2, 2), (2, 6), (3, 3), (4, 8)])
def test_processes_share_each_step_and_cover_every_row_once_per_epoch(packing, world_size, grad_accum):
    rng = random.Random(5)
    examples = [Example(input_ids=[1] * rng.randint(3, 40), targets=[1] * 3, row=i) for i in range(23)]
    plan = BatchPlan.build(examples, batch_size=2, max_seq_len=32, packing=packing, seed=11)
    epochs, first = 3, 0
    seen: list[int] = []  # rows in the order the processes consumed them, step by step
    while first < epochs * plan.per_epoch:
        shares = [rank_micro_batches(first, grad_accum, rank, world_size) for rank in range(world_size)]
        assert all(len(share) == grad_accum // world_size for share in shares)  # same work everywhere
        numbers = sorted(n for share in shares for n in share)
        assert numbers == list(range(first, first + grad_accum))  # exactly one process's step
        seen.extend(row for n in numbers for row in plan.micro_batch(n))
        first += grad_accum
    one_process = [row for n in range(first) for row in plan.micro_batch(n)]
    assert seen == one_process  # the same seeded global order as a single process
    rows_per_epoch = sum(len(group) for group in plan.groups)
    for epoch in range(epochs):
        assert sorted(seen[epoch * rows_per_epoch : (epoch + 1) * rows_per_epoch]) == list(range(23))


def test_grad_accum_must_divide_by_the_process_count():
    assert per_rank_grad_accum(8, 4) == 2
    assert per_rank_grad_accum(3, 1) == 3
    with pytest.raises(ConfigError, match=r"multiple of 4.*--grad-accum 8"):
        per_rank_grad_accum(6, 4, batch_size=2)


def test_auto_picks_ddp_when_the_model_fits_one_device_else_fsdp():
    gib = 2**30
    assert choose_mode("auto", 1, device="cuda", weight_bytes=140 * gib, device_bytes=80 * gib) == "none"
    assert choose_mode("auto", 8, device="cuda", weight_bytes=16 * gib, device_bytes=80 * gib) == "ddp"
    assert choose_mode("auto", 8, device="cuda", weight_bytes=141 * gib, device_bytes=80 * gib) == "fsdp"
    assert choose_mode("auto", 2, device="cpu", weight_bytes=141 * gib, device_bytes=None) == "ddp"
    assert choose_mode("fsdp", 2, device="cpu", weight_bytes=1, device_bytes=None) == "fsdp"


def test_weight_bytes_read_from_safetensors_headers(tiny_model_dir):
    from safetensors.torch import load_file

    params = sum(t.numel() for t in load_file(str(tiny_model_dir / "model.safetensors")).values())
    assert weight_bytes(tiny_model_dir, "fp32") == 4 * params
    assert weight_bytes(tiny_model_dir, "bf16") == 2 * params
    assert weight_bytes(tiny_model_dir.parent, "bf16") is None  # no weights there: unknown


def test_launch_environment_of_torchrun_and_accelerate():
    assert read_launch({}) == read_launch({"WORLD_SIZE": "1"})
    assert read_launch({}).world_size == 1
    launch = read_launch({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "ACCELERATE_USE_FSDP": "true"})
    assert (launch.world_size, launch.rank, launch.local_rank, launch.accelerate_fsdp) == (4, 3, 1, True)
    with pytest.raises(ConfigError, match="torchrun"):
        read_launch({"WORLD_SIZE": "two"})


def test_refusals_name_the_setting_and_the_fix(fast_config, qa_file):
    from infuse.train.model import Placement

    cpu = Placement(device="cpu", dtype_name="fp32", backend="hf", fused_kernels=False)
    with pytest.raises(ConfigError, match="distributed='none'.*2 processes"):
        start(fast_config(qa_file, distributed="none"), cpu, environ=TWO)
    with pytest.raises(ConfigError, match="backend=.unsloth.*one GPU only.*--backend auto"):
        start(fast_config(qa_file), Placement("cuda", "bf16", "unsloth", False), environ=TWO)
    with pytest.raises(ConfigError, match="grad_accum=3.*--grad-accum 4"):
        start(fast_config(qa_file, grad_accum=3), cpu, environ=TWO)
    with pytest.raises(ConfigError, match="distributed='zero'"):
        fast_config(qa_file, distributed="zero").validate()
    context, placement = start(fast_config(qa_file, distributed="fsdp"), cpu, environ={})
    assert (context.world_size, context.mode, context.owns_group) == (1, "none", False)
    assert "no effect in one process" in context.warnings[0]
    assert isinstance(context, DistContext) and placement is cpu


def test_ddp_options_follow_the_installed_torch_signature():
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    from infuse.train.data_parallel import ddp_options

    class Torch211:
        def __init__(self, module, device_ids=None, broadcast_buffers=True, init_sync=True): ...

    class Torch213:
        def __init__(self, module, broadcast_buffers=None, init_sync=True, forward_sync_buffers=None): ...

    class Torch23:
        def __init__(self, module, broadcast_buffers=True): ...

    assert ddp_options(Torch211) == {"broadcast_buffers": False, "init_sync": False}
    assert ddp_options(Torch213) == {"forward_sync_buffers": False, "init_sync": False}
    assert ddp_options(Torch23) == {"broadcast_buffers": False}
    installed = ddp_options(DistributedDataParallel)
    assert set(installed) <= set(inspect.signature(DistributedDataParallel.__init__).parameters)


def test_unsloth_under_a_launcher_is_refused_before_any_device_check(fast_config, qa_file, monkeypatch):
    from infuse.train import train

    for name, value in TWO.items():
        monkeypatch.setenv(name, value)
    # on this CPU machine the device check would otherwise answer first ("needs a CUDA GPU")
    with pytest.raises(ConfigError, match="backend='unsloth' cannot train on 2 processes.*one GPU only"):
        train(fast_config(qa_file, backend="unsloth", device="auto"))


# ---------------------------------------------------------------- real processes (torchrun, gloo)
def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _torchrun(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"torchrun failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def _assert_same_adapter(ours: Path, theirs: Path) -> None:
    import torch
    from safetensors.torch import load_file

    mine, reference = load_file(str(ours / "adapter_model.safetensors")), load_file(str(theirs / "adapter_model.safetensors"))
    assert mine.keys() == reference.keys()
    assert any(float(t.abs().max()) > 0 for name, t in reference.items() if "lora_B" in name)  # it trained
    for name in reference:
        torch.testing.assert_close(mine[name], reference[name], rtol=1e-4, atol=1e-6, msg=name)


def _losses(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len({row["step"] for row in rows}) == len(rows)  # one writer: no step logged twice
    return {row["step"]: row for row in rows}


def _same_metrics(ours: Path, theirs: Path, keys=("loss", "trained_tokens", "tokens")) -> None:
    mine, reference = _losses(ours), _losses(theirs)
    assert sorted(mine) == sorted(reference)
    for step, row in reference.items():
        for key in keys:
            if key in row:
                assert mine[step][key] == pytest.approx(row[key], rel=1e-4, abs=1e-5), (step, key)


COMMON = dict(batch_size=2, grad_accum=2, learning_rate=1e-2, warmup_steps=2, lr_schedule="constant")


@pytest.mark.slow
def test_torchrun_ddp_cli_trains_the_same_adapter_as_one_process(fast_config, qa_file, tmp_path):
    from infuse.train import train

    settings = dict(COMMON, max_steps=4, eval_split=0.25, eval_every=2, save_every=2)
    single = train(fast_config(qa_file, output=str(tmp_path / "single"), **settings))
    config = fast_config(qa_file, output=str(tmp_path / "ddp"), **settings)
    done = _torchrun([
        "-m", "infuse", "train", "--model", config.model, "--data", config.data, "--output", config.output,
        "--max-steps", "4", "--batch-size", "2", "--grad-accum", "2", "--learning-rate", "1e-2",
        "--warmup-steps", "2", "--lr-schedule", "constant", "--no-gradient-checkpointing",
        "--max-seq-len", "128", "--device", "cpu", "--eval-split", "0.25", "--eval-every", "2",
        "--save-every", "2", "--distributed", "ddp", "--json",
    ])
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1  # rank 0 speaks for the run
    assert (printed[0]["distributed"], printed[0]["processes"], printed[0]["steps"]) == ("ddp", 2, 4)
    run = Path(config.output)
    _assert_same_adapter(run, single.run_dir)
    _assert_same_adapter(run / "checkpoints" / "step-2", single.run_dir / "checkpoints" / "step-2")
    _same_metrics(run, single.run_dir, keys=("loss", "trained_tokens", "tokens", "eval_loss"))
    info = json.loads((run / "run.json").read_text())
    assert (info["distributed"], info["processes"]) == ("ddp", 2)


WORKER = """
import json, sys
import torch.distributed as dist
from infuse.train import RunConfig, train

dist.init_process_group("gloo")  # the caller's own group: train() joins it and leaves it open
for job in json.loads(open(sys.argv[1]).read()):
    result = train(RunConfig(**job["config"]), resume=job["resume"])
    assert (result.distributed, result.world_size) == ("fsdp", 2), result
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_fsdp_matches_one_process_and_resumes_across_process_counts(fast_config, qa_file, tmp_path):
    from infuse.train import train

    settings = dict(COMMON, save_every=3)
    reference = train(fast_config(qa_file, output=str(tmp_path / "single"), max_steps=6, **settings))
    # 1 -> 2 processes: FSDP continues the single-process run from its step-3 checkpoint.
    grown = tmp_path / "grown"
    shutil.copytree(reference.run_dir / "checkpoints" / "step-3", grown / "checkpoints" / "step-3")
    shutil.copy(reference.run_dir / "metrics.jsonl", grown / "metrics.jsonl")
    fsdp = dict(settings, distributed="fsdp", gradient_checkpointing=True)
    jobs = [
        {"config": fast_config(qa_file, output=str(tmp_path / "fsdp"), max_steps=3, **fsdp).to_dict(),
         "resume": False},
        {"config": fast_config(qa_file, output=str(grown), max_steps=6, **fsdp).to_dict(), "resume": True},
    ]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    (tmp_path / "worker.py").write_text(textwrap.dedent(WORKER))
    _torchrun([str(tmp_path / "worker.py"), str(tmp_path / "jobs.json")])

    _assert_same_adapter(tmp_path / "fsdp", reference.run_dir / "checkpoints" / "step-3")
    _assert_same_adapter(grown, reference.run_dir)
    _same_metrics(grown, reference.run_dir)

    # 2 -> 1 process: one process continues the FSDP run from its (gathered) step-3 checkpoint.
    shrunk = tmp_path / "shrunk"
    shutil.copytree(tmp_path / "fsdp", shrunk)
    resumed = train(fast_config(qa_file, output=str(shrunk), max_steps=6, **settings), resume=True)
    assert resumed.steps == 6
    _assert_same_adapter(shrunk, reference.run_dir)
    _same_metrics(shrunk, reference.run_dir)


@pytest.mark.slow
def test_fast_path_under_ddp_and_fsdp_trains_what_one_process_trains(tmp_path):
    """infuse's own decoder forward (fused LoRA Functions, checkpoints) under DDP and FSDP2 (gloo)."""
    import torch

    worker = Path(__file__).with_name("fast_path_worker.py")
    single = [{"mode": "none", "fast": False, "out": str(tmp_path / "peft.pt")},
              {"mode": "none", "fast": True, "out": str(tmp_path / "fast.pt")}]
    (tmp_path / "single.json").write_text(json.dumps(single))
    done = subprocess.run([sys.executable, str(worker), str(tmp_path / "single.json")], capture_output=True,
                          text=True, env=_env(), cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = [{"mode": mode, "fast": True, "out": str(tmp_path / f"{mode}.pt")} for mode in ("ddp", "fsdp")]
    (tmp_path / "two.json").write_text(json.dumps(two))
    _torchrun([str(worker), str(tmp_path / "two.json")])

    peft, fast = torch.load(tmp_path / "peft.pt"), torch.load(tmp_path / "fast.pt")
    assert peft["layer_calls"] == 0 and fast["layer_calls"] > 0  # which path ran
    assert fast["losses"][-1] < fast["losses"][0]  # it trained
    assert fast["losses"] == pytest.approx(peft["losses"], rel=1e-4)  # the fast path is peft's math
    for mode in ("ddp", "fsdp"):
        ran = torch.load(tmp_path / f"{mode}.pt")
        assert ran["losses"] == pytest.approx(fast["losses"], rel=1e-5), mode
        assert ran["weights"].keys() == fast["weights"].keys()
        for name, tensor in fast["weights"].items():
            torch.testing.assert_close(ran["weights"][name], tensor, rtol=1e-4, atol=1e-6, msg=f"{mode} {name}")
        assert ran["layer_calls"] > 0, mode  # the fast path ran, inside DDP / the FSDP units
        moved = [name for name, tensor in ran["weights"].items()
                 if (tensor - fast["initial"][name]).abs().max() > 1e-3]
        assert len(moved) == len(fast["initial"])  # every LoRA tensor trained: compared after training
