"""LoRA fine-tuning: config, the training loop, checkpoints, chat with a run, and export.

    RunConfig                     every setting of a run (infuse.train.config)
    resolve_run_config(settings, config_file=, resume=)  settings in layers, as `infuse train` takes them
    train(config, resume=False, on_progress=None)   the training loop (infuse.train.loop) -> TrainResult
    RunRecord.read(run) / .write(run)   the run record eval, chat and export read (infuse.train.runs)
    generate_from_run(run, prompt)  base + adapter with the run's exact template (infuse.train.runs)
    export_run(run, out, format=)   adapter | merged | gguf (infuse.train.export)

Heavy libraries (torch, transformers, peft) are imported inside the functions.
"""

from __future__ import annotations

from infuse.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "RunConfig": "infuse.train.config",
    "train": "infuse.train.loop",
    "RunRecord": "infuse.train.runs",
    "resolve_run_config": "infuse.train.runs",
    "generate_from_run": "infuse.train.runs",
    "load_run_model": "infuse.train.runs",
    "export_run": "infuse.train.export",
})
