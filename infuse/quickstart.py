"""`infuse quickstart`: the whole comparison on a sample pack (or a folder of your documents).

Steps, each timed and printed:

1. knowledge: the documents go into a knowledge base (RAG) and are measured for CAG;
2. questions and training data: the pack's own, or a folder's `questions.jsonl` /
   `train.jsonl`, or pairs generated from the documents (`infuse data synth`);
3. fine-tune: a LoRA on the training pairs, sized to a few minutes on a CPU;
4. eval: base model, RAG, CAG, LoRA and LoRA+RAG on the same questions (a fixed subset of
   about a dozen on a CPU, all of them on a GPU), then the report.

Re-running reuses what is already there and unchanged (the knowledge base skips unchanged
files; a finished training run with the same settings is not trained again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError

QUESTION_FILES = ("questions.jsonl", "train.jsonl")  # a folder's own data, not documents
CPU_SUBSET = "cpu"


@dataclass
class QuickstartPlan:
    """What quickstart will run on, decided before any heavy work starts."""

    documents: list[Path]
    questions: Path | None
    train_data: Path | None
    output: Path
    model: str
    on_gpu: bool
    subset: str | None
    epochs: int
    max_new_tokens: int
    notes: list[str] = field(default_factory=list)
    augment: bool = True  # knowledge-injection + RAFT rows added to the training data


def _documents_in(folder: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """The folder's documents as `infuse kb add` finds them, without its question files."""
    from infuse.knowledge.reading import find_files

    files, skipped = find_files([folder])
    own = {(folder / name).resolve() for name in QUESTION_FILES}
    return [path for path in files if path not in own], skipped


def plan_quickstart(
    folder: str | Path | None = None,
    *,
    output: str | Path = "infuse-quickstart",
    model: str = "smollm2",
    on_gpu: bool | None = None,
    epochs: int | None = None,
    max_new_tokens: int = 32,
    all_questions: bool = False,
    augment: bool = True,
) -> QuickstartPlan:
    """Decide inputs and budget. Raises ConfigError when the folder has no documents."""
    if on_gpu is None:
        import torch

        on_gpu = torch.cuda.is_available()
    output = Path(output)
    notes: list[str] = []
    if folder is None:
        from infuse.samples import sample_pack

        pack = sample_pack()
        documents = sorted(pack.documents)
        questions, train_data = pack.questions, pack.train
        notes.append(f"sample pack '{pack.name}': {len(documents)} documents (a fictional company)")
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise ConfigError(
                f"{folder}: not a folder. Give a folder of documents (text, Markdown, HTML, PDF, "
                "DOCX, man pages ...)."
            )
        documents, skipped = _documents_in(folder)
        if not documents:
            reasons = "; ".join(item["reason"] for item in skipped[:3])
            raise ConfigError(
                f"{folder}: no documents found (text, Markdown, HTML, PDF, DOCX, man pages ...)"
                + (f"; {reasons}" if reasons else "") + ". Put your files there."
            )
        questions = folder / "questions.jsonl" if (folder / "questions.jsonl").exists() else None
        train_data = folder / "train.jsonl" if (folder / "train.jsonl").exists() else None
        notes.append(f"{len(documents)} documents from {folder}")
        for item in skipped[:5]:
            notes.append(f"not read: {item['reason']}")
        if len(skipped) > 5:
            notes.append(f"not read: {len(skipped) - 5} more files (`infuse kb add {folder}` lists them)")
    subset = None if (on_gpu or all_questions) else CPU_SUBSET
    if epochs is None:
        # On a CPU one pass over the augmented rows (each fact seen 4 times: the pair, two
        # rewordings, a RAFT row) costs about what 3 epochs of the bare pairs did.
        epochs = 8 if on_gpu else (1 if augment else 3)
    return QuickstartPlan(
        documents=documents,
        questions=questions,
        train_data=train_data,
        output=output,
        model=model,
        on_gpu=on_gpu,
        subset=subset,
        epochs=epochs,
        max_new_tokens=max_new_tokens,
        notes=notes,
        augment=augment,
    )


def _ensure_questions(plan: QuickstartPlan, say: Callable[[str], None], chat_model: Any = None) -> None:
    """Generate questions/training pairs from the documents when the folder has none
    (with `chat_model`, default: the plan's model)."""
    if plan.questions is not None and plan.train_data is not None:
        return
    from infuse.data.synth import heldout_path, read_documents, synthesize_qa, write_pairs
    from infuse.llm import load_chat_model

    say("no questions.jsonl/train.jsonl: generating question/answer pairs from the documents")
    result = synthesize_qa(
        read_documents(plan.documents).documents, chat_model or load_chat_model(plan.model)
    )
    target = plan.output / "synth" / "qa.jsonl"
    train_path = write_pairs(result.train, target, id_prefix="syn")
    held_path = write_pairs(result.heldout, heldout_path(target), id_prefix="held")
    say(f"generated {len(result.train)} training and {len(result.heldout)} held-out pairs")
    if plan.train_data is None:
        plan.train_data = train_path
    if plan.questions is None:
        plan.questions = held_path
    plan.subset = None  # generated questions carry no cpu tag


def _augment_training(plan: QuickstartPlan, say: Callable[[str], None]) -> None:
    """Add knowledge-injection rows (rewordings, passages restated) and RAFT rows (questions
    over passages with distractors, for LoRA+RAG) to the training data (`infuse.data.synth`)."""
    if not plan.augment or plan.train_data is None:
        return
    from infuse.data.synth import augment_rows, read_documents, write_rows

    rows = [json.loads(line) for line in plan.train_data.read_text().splitlines() if line.strip()]
    documents = read_documents(plan.documents).documents
    augmented = augment_rows(rows, documents)
    target = plan.output / "train-augmented.jsonl"
    if not target.exists() or target.read_text() != "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in augmented
    ):
        write_rows(augmented, target)
    counts: dict[str, int] = {}
    for row in augmented:
        counts[row["augmentation"]] = counts.get(row["augmentation"], 0) + 1
    say(
        f"training data: {len(rows)} pairs + "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items() if kind != "original")
        + " rows (knowledge injection, RAFT)"
    )
    plan.train_data = target


def _training_config(plan: QuickstartPlan):
    from infuse.train import RunConfig

    return RunConfig(
        data=str(plan.train_data),
        output=str(plan.output / "run"),
        model=plan.model,
        lora_r=16,
        learning_rate=1e-3,
        warmup_steps=5,
        num_epochs=plan.epochs,
        batch_size=8,
        grad_accum=1,
        max_seq_len=512,
        gradient_checkpointing=plan.on_gpu,
        eval_split=0.1,
        eval_every=10,
        save_every=1000,
        seed=3407,
    )


def _same_finished_run(run_dir: Path, config) -> bool:
    """True when run_dir holds a finished run trained with exactly these settings."""
    from dataclasses import asdict

    from infuse.train.runs import read_run_config

    if not (run_dir / "adapter_model.safetensors").exists():
        return False
    try:
        return asdict(read_run_config(run_dir)) == asdict(config)
    except Exception:  # an unreadable or older run folder: train again
        return False


def run_quickstart(
    plan: QuickstartPlan, *, say: Callable[[str], None] = print, progress: bool = True
) -> Any:
    """Run every step of the plan; returns the EvalResults (report files in `meta['files']`)."""
    from infuse.eval import MethodOptions, evaluate
    from infuse.train import train

    timings: dict[str, float] = {}
    plan.output.mkdir(parents=True, exist_ok=True)
    for note in plan.notes:
        say(note)

    started = time.perf_counter()
    from infuse.knowledge.kb import KnowledgeBase

    kb = KnowledgeBase(plan.output / "kb", create=True)
    report = kb.add([str(path) for path in plan.documents])
    timings["knowledge_base_s"] = time.perf_counter() - started
    say(f"knowledge base: {_describe_ingest(report)} in {timings['knowledge_base_s']:.0f} s")

    _ensure_questions(plan, say)
    _augment_training(plan, say)

    started = time.perf_counter()
    config = _training_config(plan)
    run_dir = Path(config.output)
    if _same_finished_run(run_dir, config):
        say(f"fine-tune: reusing the finished run in {run_dir}")
    else:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        say(
            f"fine-tune: LoRA r={config.lora_r} on {plan.train_data.name}, {config.num_epochs} epochs"
        )
        train(config)
    timings["training_s"] = time.perf_counter() - started

    started = time.perf_counter()
    options = MethodOptions(
        model=plan.model,
        knowledge=list(plan.documents),
        run_dir=run_dir,
        max_new_tokens=plan.max_new_tokens,
        kb=str(plan.output / "kb"),
    )
    results = evaluate(
        plan.questions,
        options=options,
        tag=plan.subset,
        output_dir=plan.output / "report",
    )
    timings["eval_s"] = time.perf_counter() - started
    results.meta["quickstart"] = {key: round(value, 1) for key, value in timings.items()}
    (plan.output / "quickstart.json").write_text(
        json.dumps(results.meta["quickstart"], indent=1) + "\n"
    )
    return results


def _describe_ingest(report: Any) -> str:
    counts = {
        name: len(getattr(report, name, []) or [])
        for name in ("added", "updated", "unchanged", "skipped")
    }
    return (
        ", ".join(f"{count} {name}" for name, count in counts.items() if count) or "nothing to do"
    )
