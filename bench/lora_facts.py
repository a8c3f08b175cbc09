"""Which training data and settings make quickstart's LoRA learn the facts (issue 17).

Trains the LoRA the way `infuse quickstart` does on a CPU (its own `_training_config`,
changed only by the flags given) on a recipe of training rows built by `infuse.data.synth`
from the sample pack, then evaluates lora, lora+rag (and rag) with `infuse.eval.evaluate` on
the pack's `cpu` questions, and prints one table: accuracy, hallucination rate, wrong-decline
rate and train time per method, plus which questions each got right. Each run also appends
its row to `--results` (JSONL), and `--table` prints every row gathered there so far.

The training rows never hold an eval question: the script prints the closest training
question to any eval question (difflib ratio on normalised text) so leakage shows.

Recipe ingredients (comma separated):
    pairs        the pack's train.jsonl (question paraphrases of each fact)
    para<N>      N template rewordings of each pair ("Quick question: ...")
    restate      each passage restated ("What does <doc> say about <section>?")
    raft         RAFT rows over the passages RAG retrieves for the question (RagSession)
    raftchunk    RAFT rows over whole chunks with the most similar distractors
    decline      questions about names in the documents and things they do not hold -> a decline

    nice -n 10 python bench/lora_facts.py --recipe pairs,decline --epochs 6 --work /tmp/lf
    python bench/lora_facts.py --table --work /tmp/lf
"""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def closest_overlap(train_rows: list[dict], questions: list) -> tuple[float, str, str]:
    """The highest similarity between a training user turn and an eval question."""
    from infuse.data.synth import _question_answer

    train_questions = {_norm(_question_answer(row)[0]) for row in train_rows}
    best = (0.0, "", "")
    for question in questions:
        wanted = _norm(question.question)
        for text in train_questions:
            ratio = difflib.SequenceMatcher(None, wanted, text[-len(wanted) * 2:]).ratio()
            if ratio > best[0]:
                best = (ratio, question.question, text)
    return best


def build_rows(recipe: list[str], pack, documents, kb, args) -> list[dict]:
    from infuse.data.synth import augment_rows
    from infuse.files import read_jsonl
    from infuse.rag import RagSession

    rows = [row for _line, row in read_jsonl(pack.train)]
    variants = next((int(part[4:]) for part in recipe if part.startswith("para")), 0)
    retrieve = None
    if "raft" in recipe:
        retrieve = RagSession(kb, lazy=True).passages
    augmented = augment_rows(
        rows, documents,
        variants=variants,
        restate="restate" in recipe,
        raft="raft" in recipe or "raftchunk" in recipe,
        retrieve=retrieve,
        max_raft=args.max_raft,
        declines=(args.declines if args.declines is not None else max(8, len(rows) // 6))
        if "decline" in recipe else 0,
        seed=0,
    )
    if "pairs" not in recipe:
        augmented = [row for row in augmented if row.get("augmentation") != "original"]
    return augmented


def run(args) -> dict:
    from infuse.data.synth import write_rows
    from infuse.eval import MethodOptions, evaluate
    from infuse.eval.questions import load_questions
    from infuse.knowledge.kb import KnowledgeBase
    from infuse.quickstart import _training_config, plan_quickstart
    from infuse.samples import sample_pack
    from infuse.train import train

    work = Path(args.work)
    pack = sample_pack()
    from infuse.data.synth import read_documents

    documents = read_documents(pack.documents).documents
    kb_dir = work / "kb"
    kb = KnowledgeBase(kb_dir, create=True)
    kb.add([str(path) for path in pack.documents])
    recipe = args.recipe.split(",")
    name = args.name or f"{args.recipe}-e{args.epochs}-lr{args.lr:g}-r{args.rank}"
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(recipe, pack, documents, kb, args)
    kb.close()
    data = write_rows(rows, out / "train.jsonl")
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row.get("augmentation", "original")] = kinds.get(row.get("augmentation", "original"), 0) + 1
    questions = [q for q in load_questions(pack.questions) if "cpu" in q.tags]
    overlap = closest_overlap(rows, questions)

    plan = plan_quickstart(output=out, on_gpu=False, epochs=args.epochs)
    plan.train_data = data
    config = _training_config(plan).replace(
        output=str(out / "run"), learning_rate=args.lr, lora_r=args.rank,
        lora_alpha=args.alpha, eval_split=args.eval_split,
    )
    if args.batch:
        config = config.replace(batch_size=args.batch)
    started = time.perf_counter()
    if not (out / "run" / "adapter_model.safetensors").exists():
        import shutil

        shutil.rmtree(out / "run", ignore_errors=True)
        result = train(config)
        steps = getattr(result, "steps", None)
    else:
        steps = None
    train_s = time.perf_counter() - started
    metrics = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    steps_done = [m for m in metrics if "loss" in m]
    last_loss = steps_done[-1]["loss"] if steps_done else None
    tokens = sum(m.get("tokens", 0) for m in steps_done)

    options = MethodOptions(knowledge=list(pack.documents), run_dir=out / "run",
                            max_new_tokens=32, kb=str(kb_dir))
    started = time.perf_counter()
    results = evaluate(questions, methods=args.methods.split(","), options=options, forgetting=False)
    eval_s = time.perf_counter() - started
    row = {
        "name": name, "recipe": args.recipe, "epochs": args.epochs, "lr": args.lr,
        "rank": args.rank, "alpha": args.alpha, "eval_split": args.eval_split,
        "rows": len(rows), "kinds": kinds, "steps": steps or (steps_done[-1]["step"] if steps_done else None),
        "tokens": tokens, "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
        "last_loss": last_loss, "eval_loss": next((m["eval_loss"] for m in reversed(metrics)
                                                   if "eval_loss" in m), None),
        "overlap": [round(overlap[0], 2), overlap[1], overlap[2]],
        "methods": {}, "host": f"{platform.machine()} {platform.node()}",
    }
    for summary in results.methods:
        marks = "".join("+" if r.correct >= 1 else ("d" if r.no_answer else "-")
                        for r in results.results_for(summary.name))
        row["methods"][summary.name] = {
            "accuracy": summary.accuracy, "hallucination": summary.hallucination_rate,
            "wrong_declines": summary.wrong_decline_rate, "marks": marks,
            "answers": [r.answer for r in results.results_for(summary.name)],
        }
    with open(work / args.results, "a") as handle:
        handle.write(json.dumps(row) + "\n")
    return row


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def print_table(rows: list[dict]) -> None:
    print("questions: sample pack cpu subset (12 answerable + 3 unanswerable); marks per question "
          "in order q01 q03 q04 q12 q14 q20 q24 q25 q30 q31 q35 q37 u01 u02 u03: + right, d declined, - wrong")
    print(f"{'run':44} {'rows':>5} {'steps':>5} {'train s':>7} {'loss':>5} | "
          f"{'method':8} {'acc':>4} {'hall':>4} {'wdec':>4}  marks")
    for row in rows:
        first = True
        for method, m in row["methods"].items():
            lead = (f"{row['name'][:44]:44} {row['rows']:>5} {row['steps'] or '-':>5} "
                    f"{row['train_s']:>7.0f} {row['last_loss'] or 0:>5.2f}" if first else " " * 70)
            print(f"{lead} | {method:8} {_pct(m['accuracy']):>4} {_pct(m['hallucination']):>4} "
                  f"{_pct(m['wrong_declines']):>4}  {m['marks']}")
            first = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="pairs")
    parser.add_argument("--name")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--eval-split", type=float, default=0.1)
    parser.add_argument("--declines", type=int)
    parser.add_argument("--max-raft", type=int)
    parser.add_argument("--methods", default="lora,lora+rag")
    parser.add_argument("--work", default="/tmp/lora-facts")
    parser.add_argument("--results", default="results.jsonl")
    parser.add_argument("--table", action="store_true", help="print the rows gathered so far")
    parser.add_argument("--dry", action="store_true", help="build and describe the rows only")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.dry:
        from infuse.data.synth import read_documents
        from infuse.knowledge.kb import KnowledgeBase
        from infuse.samples import sample_pack

        pack = sample_pack()
        kb = KnowledgeBase(work / "kb", create=True)
        kb.add([str(path) for path in pack.documents])
        rows = build_rows(args.recipe.split(","), pack, read_documents(pack.documents).documents, kb, args)
        for row in rows[:6]:
            print(json.dumps(row)[:400])
        print(len(rows), "rows")
        return
    if not args.table:
        row = run(args)
        print_table([row])
        print(f"closest training question to an eval question: {row['overlap']}")
        return
    results = work / args.results
    print_table([json.loads(line) for line in results.read_text().splitlines() if line.strip()])


if __name__ == "__main__":
    main()
