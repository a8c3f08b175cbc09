"""Resume across process counts on GPUs: a run on N GPUs, stopped, continued on 1 GPU, same loss curve.

Builds a small random Llama (bf16 safetensors, the tests' tiny tokenizer) and a question/answer
file, then runs the real CLI (`infuse train`, fast path on):

1. the reference: 1 GPU, `--max-steps 8 --save-every 4`;
2. for DDP and FSDP2: `torchrun --nproc-per-node N -m infuse train --distributed MODE`, the same
   8 steps; then a copy of that run as it stood after step 4 (its step-4 checkpoint and metrics,
   what a run stopped after that checkpoint leaves) is continued with `--resume` on 1 GPU.

Prints the per-step losses side by side and the largest difference from the reference.

    python bench/train_resume_multi_gpu.py --gpus 2 --write bench/results/resume.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--max-steps", "8", "--save-every", "4", "--batch-size", "4", "--grad-accum", "4",
         "--learning-rate", "1e-3", "--warmup-steps", "2", "--lr-schedule", "cosine", "--max-seq-len", "512",
         "--json"]


def make_inputs(work: Path, tiny: bool) -> tuple[Path, Path]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_tokenizer

    model_dir, data = work / "model", work / "qa.jsonl"
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    size = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2) if tiny else \
        dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
             num_key_value_heads=8)
    config = LlamaConfig(vocab_size=len(tokenizer), **size, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    rows = [{"instruction": f"What is the refund window for item {i}? " + "Please explain. " * (i % 7),
             "output": f"The refund window for item {i} is {30 + i % 40} days. " * (1 + i % 5)}
            for i in range(256)]
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return model_dir, data


def infuse_train(args: list[str], processes: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)] \
        if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "infuse", "train", *args]
    print("$ " + " ".join(command[1:] if processes == 1 else command), flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}):\n{done.stderr[-4000:]}")
    print(done.stdout.strip().splitlines()[-1], flush=True)


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {row["step"]: row["loss"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--work", default="/tmp/infuse-resume")
    parser.add_argument("--modes", default="ddp,fsdp")
    parser.add_argument("--write")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test (gloo, tiny model)")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model_dir, data = make_inputs(work, args.tiny)
    common = ["--model", str(model_dir), "--data", str(data), *FLAGS]
    if args.tiny:
        common += ["--device", "cpu", "--max-seq-len", "128"]
    infuse_train([*common, "--output", str(work / "one")], 1)
    curves = {"1 GPU": losses(work / "one")}
    for mode in args.modes.split(","):
        several = work / f"{mode}{args.gpus}"
        infuse_train([*common, "--output", str(several), "--distributed", mode], args.gpus)
        stopped = work / f"{mode}-resumed"
        shutil.copytree(several / "checkpoints" / "step-4", stopped / "checkpoints" / "step-4")
        kept = [line for line in (several / "metrics.jsonl").read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= 4]
        (stopped / "metrics.jsonl").write_text("\n".join(kept) + "\n")
        infuse_train([*common, "--output", str(stopped), "--resume"], 1)
        curves[f"{args.gpus} GPUs {mode.upper()}"] = losses(several)
        curves[f"{mode.upper()} stopped at 4, resumed on 1 GPU"] = losses(stopped)
    names = list(curves)
    lines = ["| step | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for step in sorted(curves["1 GPU"]):
        lines.append(f"| {step} | " + " | ".join(f"{curves[n].get(step, float('nan')):.4f}" for n in names) + " |")
    worst = {n: max(abs(curves[n][s] - curves["1 GPU"][s]) for s in curves["1 GPU"]) for n in names[1:]}
    lines.append("| max abs diff vs 1 GPU | - | " + " | ".join(f"{worst[n]:.4f}" for n in names[1:]) + " |")
    report = ("Resume across process counts (`python bench/train_resume_multi_gpu.py --gpus "
              f"{args.gpus}`): 8-layer hidden-1024 random Llama, bf16, infuse fast path, `infuse train "
              + " ".join(FLAGS[:-1]) + "`; per-step training loss.\n\n" + "\n".join(lines) + "\n")
    print("\n" + report)
    if args.write:
        Path(args.write).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
