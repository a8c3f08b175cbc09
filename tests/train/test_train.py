"""A LoRA run learns, writes an inspectable run folder, and warns when something looks wrong."""

from __future__ import annotations

import json

from infuse.train.examples import IGNORE, build_token_data
from infuse.train.metrics import OverfitWatch

QUESTION = "How many days is the refund window?"  # the `fact_file` fixture's row
ANSWER = "The refund window is 45 days."


def test_lora_learns_a_fact_it_did_not_know(fast_config, fact_file):
    from infuse.llm.loading import load_local_chat_model
    from infuse.train import generate_from_run, train

    config = fast_config(fact_file, max_steps=30, batch_size=1, learning_rate=2e-2)
    before = load_local_chat_model(config.model, device="cpu").generate(
        [{"role": "user", "content": QUESTION}], max_new_tokens=12
    )
    assert ANSWER not in before.text

    result = train(config)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all("loss" in row for row in rows)
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    after = generate_from_run(result.run_dir, QUESTION, max_new_tokens=12)
    assert after.text.startswith(ANSWER)


def test_run_folder_holds_everything(fast_config, qa_file):
    from peft import PeftConfig

    from infuse.train import train

    config = fast_config(qa_file, max_steps=4, save_every=2, eval_split=0.25, eval_every=2, lora_r=4)
    result = train(config)
    run = result.run_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "config.toml", "chat_template.jinja",
                 "metrics.jsonl", "loss.png", "run.json", "run.lock"):
        assert (run / name).exists(), name
    assert (run / "checkpoints" / "step-2" / "optimizer.pt").exists()
    assert (run / "checkpoints" / "step-4" / "trainer_state.json").exists()
    assert PeftConfig.from_pretrained(run).r == 4
    assert "<|im_start|>" in (run / "chat_template.jinja").read_text()
    assert "lora_r = 4" in (run / "config.toml").read_text()
    eval_rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                 if "eval_loss" in line]
    assert [row["step"] for row in eval_rows] == [2, 4]
    assert result.eval_loss is not None and (run / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_masks_train_only_the_answer(fast_config, fact_file, tiny_tokenizer):
    from transformers import AutoTokenizer

    config = fast_config(fact_file)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    data = build_token_data(config, tokenizer)
    example = data.train[0]
    trained = [t for t in example.targets if t != IGNORE]
    text = tokenizer.decode(trained)
    assert ANSWER in text and QUESTION not in text
    # targets are next tokens: the first trained target follows the last prompt token
    first = next(i for i, t in enumerate(example.targets) if t != IGNORE)
    assert example.targets[first] == example.input_ids[first + 1]

    everything = build_token_data(config.replace(train_on_responses_only=False), tokenizer)
    assert everything.train[0].trained_tokens == len(example.input_ids) - 1


def test_short_answers_after_long_prompts_are_no_masking_fault(fast_config, tmp_path):
    """RAFT-like rows label few of their tokens; every row still trains on its answer, so no
    'template may not match' warning (it is for rows that train on nothing)."""
    from transformers import AutoTokenizer

    data = tmp_path / "long_prompts.jsonl"
    rows = [{"instruction": "refund window policy " * 25, "output": "Yes."} for _ in range(3)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = fast_config(data, max_seq_len=1024)
    tokens = build_token_data(config, AutoTokenizer.from_pretrained(config.model))
    assert tokens.trained_share < 0.02 and tokens.unlabelled_rows == 0
    assert not any("template may not match" in warning for warning in tokens.warnings)


def test_overfit_watch_warns_once():
    watch = OverfitWatch(patience=2)
    assert watch.update(2.0, 1.5) is None
    assert watch.update(1.5, 1.4) is None  # both fall: fine
    assert watch.update(1.0, 1.6) is None  # one rise is noise
    message = watch.update(0.5, 1.9)
    assert message and "Overfitting" in message
    assert watch.update(0.3, 2.5) is None  # said once
