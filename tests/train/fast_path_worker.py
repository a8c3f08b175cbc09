"""One process of the fast-path engine test: tiny Llama + LoRA, trained a few steps as `jobs` say.

    python fast_path_worker.py jobs.json                               # one process
    torchrun --standalone --nproc-per-node 2 fast_path_worker.py jobs.json   # two (gloo)

Each job: {"mode": "none"|"ddp"|"fsdp", "fast": bool, "out": path}. The model is the same seeded
tiny Llama in every process; `fast` puts infuse's own decoder forward on it (the CUDA fast path's
code, run here in float32 on the CPU, checkpoints kept in place of the CPU offload) and the run goes
through `infuse.train.data_parallel.wrap`, as `infuse train` does. Rank 0 saves the gathered LoRA
weights and the step losses to `out`.
"""

from __future__ import annotations

import json
import os
import sys


def run(job: dict) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from infuse.train import distributed, fast_decoder
    from infuse.train.config import RunConfig
    from infuse.train.data_parallel import gather_trainable, wrap
    from infuse.train.fast_decoder import install_fast_decoder
    from infuse.train.model import Placement, add_lora

    grad_accum, batch, seq = 4, 2, 24
    placement = Placement(device="cpu", dtype_name="fp32", backend="hf", fused_kernels=False)
    config = RunConfig(data="-", output="-", grad_accum=grad_accum, batch_size=batch, lora_r=8,
                       lora_alpha=16, distributed=job["mode"], gradient_checkpointing=True)
    context, placement = distributed.start(config, placement)
    distributed.use_mode(context, job["mode"] if context.is_distributed else "none")
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=1, pad_token_id=2))
    base.config.use_cache = False
    model = add_lora(config, base)
    with torch.no_grad():  # LoRA B starts at zero in peft: give it values so every path is exercised
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.05)
    initial = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    if job["fast"]:
        assert install_fast_decoder(model, offload=True) is not None
    engine = wrap(model, context, placement)
    calls = []  # layers run by the fast path (0: the peft path ran)
    real_layer_forward = fast_decoder.layer_forward

    def counted(*args, **kwargs):
        calls.append(1)
        return real_layer_forward(*args, **kwargs)

    fast_decoder.layer_forward = counted
    if job["fast"] and job["mode"] == "fsdp":  # the layers are FSDP units: the fast path runs inside them
        assert fast_decoder._is_sharded(fast_decoder.installed(model).modules[0])
    generator = torch.Generator().manual_seed(7)
    every = []
    for _ in range(grad_accum):
        ids = torch.randint(3, 96, (batch, seq), generator=generator)
        mask = torch.ones_like(ids)
        mask[1, seq - 5:] = 0  # one padded row: the fast path drops padding
        targets = torch.cat([ids[:, 1:], torch.full((batch, 1), -100)], dim=1).masked_fill(mask == 0, -100)
        targets[:, :4] = -100  # a prompt that is not trained
        every.append({"input_ids": ids, "targets": targets, "attention_mask": mask})
    mine = [every[n] for n in distributed.rank_micro_batches(0, grad_accum, context.rank, context.world_size)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    trained = int(context.sum(sum(int((b["targets"] != -100).sum()) for b in mine)))
    model.train()
    losses = []
    for _step in range(3):
        total = engine.backward_step(mine, trained)
        engine.clip_grad_norm(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(context.sum(total) / trained)
    fast_decoder.layer_forward = real_layer_forward
    weights = gather_trainable(model, context)
    if context.is_main:
        torch.save({"weights": weights, "losses": losses, "initial": initial, "layer_calls": len(calls)},
                   job["out"])
    context.barrier()


def main() -> None:
    import torch.distributed as dist

    jobs = json.loads(open(sys.argv[1]).read())
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if several:
        dist.init_process_group("gloo")  # our own group: each job's start() joins it
    for job in jobs:
        run(job)
    if several:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
