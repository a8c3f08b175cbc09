"""Data preparation throughput: infuse's pipeline beside the usual `datasets.map` pipeline.

Both take the same 50k Alpaca-shaped rows through merge (to_sharegpt) -> standardize ->
chat template -> tokenize -> response-only labels, and must give the same tokens and labels.
The usual way is written as the Unsloth notebooks do it: `datasets.map` with Python
functions at each stage, `tokenizer.apply_chat_template` per conversation, then tokenisation
and a label mask found by searching for the response marker's token ids.

    python bench/data_prep.py [--rows 50000] [--model smollm2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

WORDS = (
    "refund window policy customer order anvil rocket shipping days invoice account "
    "password reset manager holiday office badge laptop warranty repair return label "
    "price discount coupon delivery address support ticket priority escalation"
).split()
PROMPT = "{instruction}[[\n\n{input}]]"


def make_rows(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Alpaca-shaped rows of varied length; a third have an empty input."""
    rng = random.Random(seed)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."

    return [
        {
            "instruction": sentence(5, 25),
            "input": "" if i % 3 == 0 else sentence(5, 40),
            "output": sentence(5, 80),
        }
        for i in range(count)
    ]


def usual_way(rows: list[dict[str, str]], tokenizer) -> tuple[list, list, dict[str, float]]:
    """The notebooks' pipeline: one datasets.map per stage, Python functions per row."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = Dataset.from_list(rows)
    timings["load"] = time.perf_counter() - start

    def merge(row):
        text = row["instruction"] if row["instruction"] is not None else ""
        if row["input"]:
            text += "\n\n" + row["input"]
        return {
            "conversations": [
                {"from": "human", "value": text},
                {"from": "gpt", "value": row["output"]},
            ]
        }

    mark = time.perf_counter()
    dataset = dataset.map(merge, remove_columns=dataset.column_names)
    timings["merge"] = time.perf_counter() - mark

    roles = {"human": "user", "gpt": "assistant", "system": "system"}

    def standardize(row):
        return {
            "conversations": [
                {"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]
            ]
        }

    mark = time.perf_counter()
    dataset = dataset.map(standardize)
    timings["standardize"] = time.perf_counter() - mark

    def formatting_prompts_func(examples):
        return {
            "text": [
                tokenizer.apply_chat_template(convo, tokenize=False)
                for convo in examples["conversations"]
            ]
        }

    mark = time.perf_counter()
    dataset = dataset.map(formatting_prompts_func, batched=True)
    timings["template"] = time.perf_counter() - mark

    mark = time.perf_counter()
    dataset = dataset.map(
        lambda batch: tokenizer(batch["text"], add_special_tokens=False),
        batched=True,
        remove_columns=["text", "conversations"],
    )
    timings["tokenize"] = time.perf_counter() - mark

    instruction_ids = tokenizer("<|im_start|>user\n", add_special_tokens=False)["input_ids"]
    response_ids = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]

    def find(ids, pattern, start):
        for i in range(start, len(ids) - len(pattern) + 1):
            if ids[i : i + len(pattern)] == pattern:
                return i
        return -1

    def mask(row):
        ids = row["input_ids"]
        labels = [-100] * len(ids)
        position = 0
        while True:
            start = find(ids, response_ids, position)
            if start < 0:
                break
            start += len(response_ids)
            end = find(ids, instruction_ids, start)
            end = len(ids) if end < 0 else end
            labels[start:end] = ids[start:end]
            position = end
        return {"labels": labels}

    mark = time.perf_counter()
    dataset = dataset.map(mask)
    timings["labels"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    columns = dataset.with_format("arrow")[:]
    return columns["input_ids"].to_pylist(), columns["labels"].to_pylist(), timings


def infuse_way(rows: list[dict[str, str]], tokenizer) -> tuple[list, list, dict[str, float]]:
    """infuse: columnar merge/standardize, batched template rendering and tokenisation."""
    from datasets import Dataset

    from infuse.data import encode_conversations, standardize_sharegpt, to_sharegpt
    from infuse.data.sharegpt import column_values

    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = Dataset.from_list(rows)
    timings["load"] = time.perf_counter() - start
    mark = time.perf_counter()
    dataset = to_sharegpt(dataset, merged_prompt=PROMPT, output_column_name="output")
    timings["merge"] = time.perf_counter() - mark
    mark = time.perf_counter()
    dataset = standardize_sharegpt(dataset)
    timings["standardize"] = time.perf_counter() - mark
    mark = time.perf_counter()
    encoded = encode_conversations(tokenizer, column_values(dataset, "conversations"))
    timings["template+tokenize+labels"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    return encoded["input_ids"], encoded["labels"], timings


def labels_agree(labels_a: list, labels_b: list, input_ids: list) -> float:
    """Share of rows whose trained tokens are the same (the usual way also trains on the
    final newline after <|im_end|>; compare the trained tokens up to and including it)."""
    same = 0
    for a, b in zip(labels_a, labels_b):
        trained_a = [t for t in a if t != -100]
        trained_b = [t for t in b if t != -100]
        if trained_a[: len(trained_b)] == trained_b:
            same += 1
    return same / max(len(input_ids), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument(
        "--model", default="smollm2", help="tokenizer source (folder or packaged name)"
    )
    args = parser.parse_args()

    import datasets
    import tokenizers
    import transformers

    from infuse.models import load_tokenizer

    tokenizer = load_tokenizer(args.model)
    rows = make_rows(args.rows)
    ids_usual, labels_usual, usual = usual_way(rows, tokenizer)
    ids_ours, labels_ours, ours = infuse_way(rows, tokenizer)

    identical_ids = sum(a == b for a, b in zip(ids_usual, ids_ours)) / len(rows)
    agreement = labels_agree(labels_usual, labels_ours, ids_ours)
    print(f"\ndata prep, {args.rows:,} Alpaca-shaped rows, tokenizer {args.model}")
    print(
        f"python {platform.python_version()}, datasets {datasets.__version__}, transformers "
        f"{transformers.__version__}, tokenizers {tokenizers.__version__}, "
        f"{os.cpu_count()} CPUs ({platform.machine()})\n"
    )
    print(f"| pipeline | {' | '.join(usual)} |")
    print(f"|---|{'---|' * len(usual)}")
    print(f"| usual datasets.map | {' | '.join(f'{v:.2f} s' for v in usual.values())} |")
    print(f"\n| pipeline | {' | '.join(ours)} |")
    print(f"|---|{'---|' * len(ours)}")
    print(f"| infuse | {' | '.join(f'{v:.2f} s' for v in ours.values())} |")
    usual_rate = args.rows / usual["total"]
    ours_rate = args.rows / ours["total"]
    print("\n| pipeline | rows/s | total |")
    print("|---|---|---|")
    print(f"| usual datasets.map | {usual_rate:,.0f} | {usual['total']:.2f} s |")
    print(f"| infuse | {ours_rate:,.0f} | {ours['total']:.2f} s |")
    print(f"\ninfuse / usual: {ours_rate / usual_rate:.2f}x rows/s")
    print(
        f"same input_ids: {identical_ids:.1%} of rows; same trained tokens: {agreement:.1%} of rows"
    )


if __name__ == "__main__":
    main()
