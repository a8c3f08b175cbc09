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
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infuse.errors import ConfigError
from infuse.models import DEFAULT_MODEL

QUESTION_FILES = ("questions.jsonl", "train.jsonl")  # a folder's own data, not documents
CPU_SUBSET = "cpu"
CPU_QUESTIONS = 12  # questions evaluated on a CPU when none carries the cpu tag
# fewer training rows than this hold none out for the eval loss (a split of 1 row fails, and
# a loss over one or two rows says nothing)
MIN_ROWS_FOR_EVAL_SPLIT = 10
# question generation budget: (seconds, kept pairs) on a CPU and on a GPU or a server
SYNTH_BUDGET = {"cpu": (360.0, 120), "fast": (1200.0, 400)}
# What the training data gains (`infuse.data.synth.augment_rows`), per machine. On a CPU: the
# pairs, questions the documents do not answer (with a decline, so the LoRA learns to say it
# does not know) and RAFT rows over the passages RAG retrieves (one per fact, so LoRA+RAG reads
# them); rewordings and restated passages cost more than a CPU quickstart can give
# (bench/lora_facts.py measured the recipes on the sample pack).
# General questions the base answers right, answered by the base itself, mixed into the
# training data so the adapter does not forget them (a quarter of the pairs, at least 8).
REPLAY_PER_PAIR = 0.25
MIN_REPLAY = 8
# Training sequences are packed to PACKED_SEQ_LEN tokens, raised to fit the longest row (a RAFT
# row over long passages) up to MAX_SEQ_LEN.
PACKED_SEQ_LEN = 512
MAX_SEQ_LEN = 2048
AUGMENT_RECIPES = {
    "cpu": {"variants": 0, "restate": False, "raft": True, "max_raft": 24},
    "gpu": {"variants": 2, "restate": True, "raft": True, "max_raft": None},
}

# What each kind of added training row is, as quickstart tells the user.
AUGMENTATION_WORDS = {
    "paraphrase": "the questions reworded",
    "restatement": "passages restated",
    "raft": "questions over the passages RAG retrieves",
    "decline": "questions the documents do not answer, declined",
    "replay": "general questions in the base model's own right answers, so it does not forget them",
}

Say = Callable[[str], None]
Progress = Callable[..., None]


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
    base_url: str | None = None
    api_key: str | None = None
    question_budget_s: float | None = None
    max_pairs: int | None = None
    trainable: bool = True  # the model can be fine-tuned here (lora, lora+rag)
    augment: bool = True  # knowledge-injection, decline and RAFT rows added to the training data


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
    # the model, and the server that answers for it
    model: str = DEFAULT_MODEL,
    base_url: str | None = None,
    api_key: str | None = None,
    # the fine-tune
    on_gpu: bool | None = None,
    epochs: int | None = None,
    augment: bool | None = None,
    # the questions generated and asked
    question_budget_s: float | None = None,
    max_pairs: int | None = None,
    all_questions: bool = False,
    max_new_tokens: int = 32,
) -> QuickstartPlan:
    """Decide inputs and budget. Raises ConfigError when the folder has no documents, a setting
    is out of range or the output folder cannot be written (before any work starts).

    `model` is a packaged name, a local GGUF file or Hugging Face folder, or with `base_url`
    the name an OpenAI-compatible server knows (then LoRA needs `model` to be local as well).
    `question_budget_s` / `max_pairs` bound question generation (default: sized to the machine).
    """
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: must be at least 1.")
    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {max_new_tokens}: must be at least 1.")
    if question_budget_s is not None and question_budget_s <= 0:
        raise ConfigError(f"--question-budget {question_budget_s}: give seconds above 0.")
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"--max-pairs {max_pairs}: must be at least 1.")
    from infuse.files import check_writable_folder

    check_writable_folder(output, setting="--output folder")
    server_notes = _server_notes(base_url, api_key, model) if base_url else []
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
    if augment is None:
        augment = True  # a lighter recipe on a CPU (AUGMENT_RECIPES)
    if epochs is None:
        # A small model learns a fact from many passes over its wordings: on a CPU 6 epochs of
        # the pairs (with a few RAFT and decline rows) fit the quickstart's minutes.
        epochs = 8 if on_gpu else (6 if augment else 3)
    budget_s, pairs = SYNTH_BUDGET["fast" if (on_gpu or base_url) else "cpu"]
    trainable = _trainable(model)
    if not trainable:
        notes.append(
            f"lora and lora+rag are skipped: they need a trainable local model and '{model}' is "
            "not one here; give --model a packaged name (smollm2), a local GGUF file or a Hugging "
            "Face folder (with --base-url the server still answers for base, rag and cag)"
        )
    model_note = f"model: {model}"
    if base_url:
        model_note += f" served at {base_url} (base, rag, cag" + (
            f"; lora and lora+rag train and answer here on the local {model})" if trainable else ")")
        notes.extend(server_notes)
    notes.insert(0, model_note)
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
        base_url=base_url,
        api_key=api_key,
        question_budget_s=question_budget_s or budget_s,
        max_pairs=max_pairs or pairs,
        trainable=trainable,
        augment=augment,
    )


def _server_notes(base_url: str, api_key: str | None, model: str) -> list[str]:
    """Ask the server for its models now, so an unreachable --base-url fails before any work
    (BackendError naming the URL); a note when it does not list `model`."""
    from infuse.llm.openai_compat import server_models

    listed = server_models(base_url, api_key=api_key)
    if not listed or model in listed:
        return []
    shown = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
    return [f"the server at {base_url} lists {shown}, not '{model}'; if it does not answer to "
            f"'{model}' (llama.cpp's server answers to any name), give --model one of its names"]


def _trainable(model: str) -> bool:
    """True when `model` resolves to local weights LoRA can train (never downloads)."""
    from infuse.errors import ModelNotFoundError
    from infuse.models import resolve_chat_model

    try:
        resolve_chat_model(model)
    except (ModelNotFoundError, ConfigError):
        return False
    return True


def _ensure_questions(
    plan: QuickstartPlan, say: Say, on_progress: Progress | None = None, chat_model: Any = None
) -> None:
    """Generate training pairs (and, without questions.jsonl, held-out questions) from the
    documents when the folder has none, within the plan's time budget and pair cap
    (with `chat_model`, default: the plan's model, on llama.cpp when installed)."""
    if plan.questions is not None and plan.train_data is not None:
        return
    from infuse.data.synth import (
        heldout_path,
        pair_rows,
        read_documents,
        synthesize_qa,
        unanswerable_rows,
        write_pairs,
        write_rows,
    )
    from infuse.llm import load_chat_model

    own_questions = plan.questions is not None
    if own_questions:
        say("questions.jsonl without train.jsonl: generating training pairs from the documents "
            "(your questions stay the eval set)")
    else:
        say("no questions.jsonl/train.jsonl: generating question/answer pairs from the documents")
    budget = plan.question_budget_s
    say(f"question generation: at most {plan.max_pairs} pairs or "
        + (f"{budget / 60:.0f} minutes" if budget >= 120 else f"{budget:.0f} s")
        + " (--max-pairs, --question-budget); a passage already begun is finished")
    _begin(on_progress, "questions")
    if chat_model is None:
        chat_model = (load_chat_model(plan.model, base_url=plan.base_url, api_key=plan.api_key)
                      if plan.base_url else load_chat_model(plan.model))
    documents = read_documents(plan.documents).documents
    result = synthesize_qa(
        documents, chat_model,
        holdout=0.0 if own_questions else 0.2,
        max_pairs=plan.max_pairs, time_budget_s=plan.question_budget_s,
        on_progress=_step(on_progress, "questions"),
    )
    target = plan.output / "synth" / "qa.jsonl"
    train_path = write_pairs(result.train, target, id_prefix="syn")
    held_rows = pair_rows(result.heldout, id_prefix="held")
    if not own_questions and result.heldout:
        held_rows += unanswerable_rows(result.train + result.heldout, documents,
                                       max(2, round(len(result.heldout) / 4)))
    held_path = write_rows(held_rows, heldout_path(target))
    stop = {"max_pairs": "pair cap reached", "time_budget": "time budget reached"}.get(
        result.stopped or "", "")
    kept = len(result.train) + len(result.heldout)
    from_model = kept - result.from_text
    say(f"generated {kept} question/answer pairs in {result.elapsed_s:.0f} s"
        + (f" ({stop})" if stop else "") + f": the model wrote {from_model} usable ones from the "
        f"{result.chunks_asked} of {result.chunks} passages it read"
        + (f", plus {result.from_text} read off the text" if result.from_text else "")
        + f"; they cover {result.documents_covered} of {result.documents} documents: "
        f"{len(result.train)} to train the LoRA, {len(result.heldout)} held out for the eval")
    if not own_questions and result.heldout:
        say("the held-out facts are not in the LoRA's training data, so 'lora' alone is asked "
            "about facts it never saw (a fine-tune cannot know them; 'lora+rag' reads them): "
            "to measure what the LoRA learned, give questions.jsonl about facts in train.jsonl")
    if result.stopped == "model_unusable":
        say(f"the model wrote no usable pair from the first {result.chunks_asked} passages, so "
            "the questions are read off the text (plain wording); a stronger model writes better "
            "ones: --base-url http://127.0.0.1:8080/v1 --model NAME")
    unanswerable = len(held_rows) - len(result.heldout)
    if unanswerable:
        say(f"added {unanswerable} questions the documents cannot answer to the held-out set "
            "(declining them is right; answering is a hallucination)")
    if not result.train:
        raise ConfigError(
            "No generated pair passed the checks, so there is nothing to train on: give a "
            "train.jsonl, or a stronger model "
            + ("than the one at --base-url (--model NAME)." if plan.base_url else
               "(--base-url http://127.0.0.1:8080/v1 --model NAME).")
        )
    if plan.train_data is None:
        plan.train_data = train_path
    if plan.questions is None:
        plan.questions = held_path


def _step(on_progress: Progress | None, step: str) -> Progress | None:
    """`on_progress` with `step=` added (a step's own `step` key is kept as `stage`)."""
    if on_progress is None:
        return None

    def report(done: int, total: int | None = None, **info: Any) -> None:
        if "step" in info:
            info["stage"] = info.pop("step")
        on_progress(done, total, step=step, **info)

    return report


def _begin(on_progress: Progress | None, step: str) -> None:
    """Tell `on_progress` a step began (`done=0, total=None`), so its elapsed time and
    estimate count from here, not from the step's first finished unit."""
    if on_progress is not None:
        on_progress(0, None, step=step)


def choose_questions(plan: QuickstartPlan, say: Say) -> Any:
    """The questions to evaluate: all (GPU, --all-questions), the ones tagged `cpu`, or, on a
    CPU when none carries the tag, CPU_QUESTIONS of them picked evenly (said which, and how to
    get all). Returns a question file path or a list of questions for `evaluate`."""
    from infuse.eval.questions import load_questions

    if plan.subset is None:
        return plan.questions
    questions = load_questions(plan.questions)
    tagged = [q for q in questions if plan.subset in q.tags]
    if tagged:
        say(f"evaluating the {len(tagged)} of {len(questions)} questions tagged '{plan.subset}' "
            "(on a CPU; --all-questions for every one)")
        return tagged
    if len(questions) <= CPU_QUESTIONS:
        return questions
    step = len(questions) / CPU_QUESTIONS
    chosen = [questions[int(i * step)] for i in range(CPU_QUESTIONS)]
    say(f"no question is tagged '{plan.subset}': on a CPU quickstart evaluates {len(chosen)} of "
        f"{len(questions)} questions picked evenly ({', '.join(q.id for q in chosen)}); "
        "--all-questions evaluates every one")
    return chosen


def _augment_training(plan: QuickstartPlan, say: Callable[[str], None]) -> None:
    """Add to the training data, as `AUGMENT_RECIPES` says for this machine: questions the
    documents do not answer (answered with a decline), RAFT rows (questions over the passages
    the knowledge base retrieves for them, for LoRA+RAG) and on a GPU rewordings and restated
    passages (`infuse.data.synth.augment_rows`)."""
    if not plan.augment or plan.train_data is None:
        return
    from infuse.data.synth import augment_rows, decline_count, read_documents, write_rows
    from infuse.files import read_jsonl

    rows = [row for _line, row in read_jsonl(plan.train_data)]  # one wording of JSONL errors
    documents = read_documents(plan.documents).documents
    recipe = AUGMENT_RECIPES["gpu" if plan.on_gpu else "cpu"]
    declines = decline_count(len(rows))
    kb_dir = plan.output / "kb"
    kb = None
    if kb_dir.exists():  # RAFT rows over what RAG retrieves (else over whole chunks)
        from infuse.knowledge.kb import KnowledgeBase
        from infuse.rag import RagSession

        kb = KnowledgeBase(kb_dir)
    try:
        retrieve = RagSession(kb, lazy=True).passages if kb is not None else None
        augmented = augment_rows(rows, documents, declines=declines, retrieve=retrieve, **recipe)
    finally:
        if kb is not None:
            kb.close()
    if plan.trainable:  # the base answers them, so only with a local model to train
        augmented += _replay_rows(plan.model, count=max(MIN_REPLAY, round(len(rows) * REPLAY_PER_PAIR)))
        random.Random(0).shuffle(augmented)
    target = plan.output / "train-augmented.jsonl"
    if not target.exists() or target.read_text() != "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in augmented
    ):
        write_rows(augmented, target)
    counts: dict[str, int] = {}
    for row in augmented:
        counts[row["augmentation"]] = counts.get(row["augmentation"], 0) + 1
    added = [kind for kind in AUGMENTATION_WORDS if counts.get(kind)]
    say(
        f"training data: {len(rows)} pairs + "
        + ", ".join(f"{counts[kind]} {kind}" for kind in added)
        + " rows ("
        + "; ".join(f"{kind}: {AUGMENTATION_WORDS[kind]}" for kind in added)
        + ")"
    )
    plan.train_data = target


def _replay_rows(model: str, *, count: int) -> list[dict[str, Any]]:
    """General questions the base model answers right, with its own answers: mixed into the
    training data so the adapter keeps what the base knew (`infuse.eval.forgetting.replay_rows`).
    """
    from infuse.eval.forgetting import replay_rows
    from infuse.llm import load_chat_model

    chat = load_chat_model(model)

    def answer(question: str) -> str:
        messages = [{"role": "user", "content": question}]
        return chat.generate(messages, max_new_tokens=32).text

    return replay_rows(answer, count=count)


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
        # On a CPU every padding token is computed (a GPU drops them): pack the rows into
        # micro-batches of up to 512 tokens, about 8 pairs, or a RAFT row and a few pairs.
        batch_size=8 if plan.on_gpu else 1,
        packing=not plan.on_gpu,
        grad_accum=1,
        max_seq_len=PACKED_SEQ_LEN,
        gradient_checkpointing=plan.on_gpu,
        eval_split=0.1 if _row_count(plan.train_data) >= MIN_ROWS_FOR_EVAL_SPLIT else 0.0,
        eval_every=10,
        save_every=1000,
        seed=3407,
    )


def _fit_sequence_length(config):
    """`config` with max_seq_len raised, in steps of 64 tokens up to MAX_SEQ_LEN, to the
    longest training row as the trainer encodes it: a RAFT row carries RAG's passages, and real
    documents' passages (or a user's train.jsonl) can run past the PACKED_SEQ_LEN that suits
    the pairs.
    A row longer still is left to the trainer, which names it."""
    from dataclasses import replace

    from infuse.models import resolve_chat_model
    from infuse.train.examples import longest_sequence
    from infuse.train.model import load_tokenizer_for

    longest = longest_sequence(config, load_tokenizer_for(resolve_chat_model(config.model)))
    if longest <= config.max_seq_len:
        return config
    return replace(config, max_seq_len=min(MAX_SEQ_LEN, -(-longest // 64) * 64))


def _row_count(path: Path | None) -> int:
    """Training rows in a JSONL file (non-blank lines; 0 for none)."""
    if path is None or not Path(path).is_file():
        return 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if line.strip())


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
    plan: QuickstartPlan, *, say: Say | None = None, on_progress: Progress | None = None
) -> Any:
    """Run every step of the plan; returns the EvalResults (report files in `meta['files']`).

    `say(text)` gets one line per step and decision; `on_progress(done, total, step=...)`
    reports the long steps ("knowledge base", "questions", "fine-tune", "eval"). Nothing is
    printed: without callbacks it runs silent.
    """
    from infuse.eval import MethodOptions, evaluate
    from infuse.methods import DEFAULT_METHODS
    from infuse.train import train

    say = say or (lambda text: None)
    timings: dict[str, float] = {}
    plan.output.mkdir(parents=True, exist_ok=True)
    for note in plan.notes:
        say(note)

    started = time.perf_counter()
    from infuse.knowledge.kb import KnowledgeBase

    _begin(on_progress, "knowledge base")  # the embedder's load counts in the step's time
    kb = KnowledgeBase(plan.output / "kb", create=True)
    try:
        report = kb.add([str(path) for path in plan.documents],
                        on_progress=_step(on_progress, "knowledge base"))
    finally:
        kb.close()
    timings["knowledge_base_s"] = time.perf_counter() - started
    say(f"knowledge base: {_describe_ingest(report)} in {timings['knowledge_base_s']:.0f} s")

    started = time.perf_counter()
    _ensure_questions(plan, say, on_progress)
    _augment_training(plan, say)
    timings["questions_s"] = time.perf_counter() - started

    started = time.perf_counter()
    config = _training_config(plan)
    if plan.trainable:
        config = _fit_sequence_length(config)
    run_dir = Path(config.output)
    if not plan.trainable:
        run_dir = None
    elif _same_finished_run(run_dir, config):
        say(f"fine-tune: reusing the finished run in {run_dir}")
    else:
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        say(
            f"fine-tune: LoRA r={config.lora_r} on {plan.train_data.name}, {config.num_epochs} epochs"
            + (f", sequences of up to {config.max_seq_len} tokens (the longest row)"
               if config.max_seq_len > PACKED_SEQ_LEN else "")
        )
        _begin(on_progress, "fine-tune")
        train(config, on_progress=_step(on_progress, "fine-tune"))
    if plan.trainable:  # no fine-tune step at all otherwise (said in the plan's notes)
        timings["training_s"] = time.perf_counter() - started

    questions = choose_questions(plan, say)
    started = time.perf_counter()
    options = MethodOptions(
        model=plan.model,
        base_url=plan.base_url,
        api_key=plan.api_key,
        knowledge=list(plan.documents),
        run_dir=run_dir,
        max_new_tokens=plan.max_new_tokens,
        kb=str(plan.output / "kb"),
    )
    _begin(on_progress, "eval")
    results = evaluate(
        questions,
        methods=DEFAULT_METHODS if plan.trainable else ("base", "rag", "cag"),
        extra_methods=() if plan.trainable else _untrainable(plan.model),
        options=options,
        output_dir=plan.output / "report",
        on_progress=_step(on_progress, "eval"),
    )
    timings["eval_s"] = time.perf_counter() - started
    results.meta["quickstart"] = {key: round(value, 1) for key, value in timings.items()}
    from infuse.files import write_text_atomic

    write_text_atomic(plan.output / "quickstart.json",
                      json.dumps(results.meta["quickstart"], indent=1) + "\n")
    return results


def _untrainable(model: str) -> list[Any]:
    """lora and lora+rag as methods that skip with quickstart's reason (not eval's `--run`)."""
    from infuse.methods.base import MISSING, LazyMethod, SkipMethod, SkippedMethod

    reason = (f"'{model}' is not a local model that can be fine-tuned; give --model a packaged "
              "name (smollm2), a local GGUF file or a Hugging Face folder to train one")

    def skip(name: str) -> Any:
        def open_it() -> Any:
            raise SkipMethod(SkippedMethod(name, reason, MISSING))

        return LazyMethod(name, open_it)

    return [skip("lora"), skip("lora+rag")]


def _describe_ingest(report: Any) -> str:
    counts = {
        name: len(getattr(report, name, []) or [])
        for name in ("added", "updated", "unchanged", "skipped")
    }
    return (
        ", ".join(f"{count} {name}" for name, count in counts.items() if count) or "nothing to do"
    )
