"""Response-only labels: exactly the assistant texts (+ end-of-turn token) are trained on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tiny_models import build_tiny_tokenizer

from infuse.data.masking import (
    IGNORE_INDEX,
    encode_conversation,
    encode_conversations,
    masked_share,
    summarize_labels,
    template_profile,
)
from infuse.data.responses_only import guess_template_parts, train_on_responses_only
from infuse.data.templates import get_chat_template
from infuse.errors import DataError, TemplateError

FAMILIES = {  # name: (special tokens, bos, eos, end-of-turn text)
    "chatml": ([], "<|endoftext|>", "<|im_end|>", "<|im_end|>"),
    "llama-3.1": (
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|eot_id|>",
    ),
    "gemma-2": (
        ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"],
        "<bos>",
        "<eos>",
        "<end_of_turn>",
    ),
    "mistral-nemo": (["<s>", "</s>", "[INST]", "[/INST]"], "<s>", "</s>", "</s>"),
    "phi-3.5": (
        ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
        "<|endoftext|>",
        "<|endoftext|>",
        "<|end|>",
    ),
    "alpaca": ([], "<|endoftext|>", "<|im_end|>", "<|im_end|>"),
}


def family_tokenizer(name: str):
    specials, bos, eos, _ = FAMILIES[name]
    tokenizer = build_tiny_tokenizer(chat_template=None)
    if specials:
        tokenizer.add_tokens(specials, special_tokens=True)
    tokenizer.bos_token, tokenizer.eos_token = bos, eos
    return get_chat_template(tokenizer, name)


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def trained_pieces(tokenizer, encoded) -> list[str]:
    """Decode each run of consecutive trained tokens."""
    pieces, run = [], []
    for token, label in zip(encoded.input_ids, encoded.labels):
        if label != IGNORE_INDEX:
            assert label == token
            run.append(token)
        elif run:
            pieces.append(run)
            run = []
    if run:
        pieces.append(run)
    return [tokenizer.decode(piece) for piece in pieces]


SINGLE = [
    turn("user", "What is the capital of France?"),
    turn("assistant", "The capital of France is Paris."),
]
MULTI = [
    turn("user", "What is the refund window?"),
    turn("assistant", "The refund window is 45 days."),
    turn("user", "Who sells rockets?"),
    turn("assistant", "Acme Corp sells rockets and anvils."),
]
WITH_SYSTEM = [turn("system", "You are a helpful assistant. Answer the question."), *MULTI]
SPACED = [turn("user", "  question  "), turn("assistant", "  The answer is 45 days.  ")]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_trained_tokens_are_exactly_the_answers(name):
    tokenizer = family_tokenizer(name)
    end = FAMILIES[name][3]
    cases = [SINGLE, MULTI] + ([] if name == "gemma-2" else [WITH_SYSTEM])
    for messages in cases:
        encoded = encode_conversation(tokenizer, messages)
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        assert trained_pieces(tokenizer, encoded) == [answer + end for answer in answers]
        assert not encoded.truncated and not encoded.fully_masked
        # The ids are what the template + tokenizer give on their own.
        assert encoded.input_ids == tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=False
        )


def test_trimming_templates_train_the_rendered_answer():
    for name, expected in [
        ("llama-3.1", "The answer is 45 days.<|eot_id|>"),
        ("chatml", "  The answer is 45 days.  <|im_end|>"),
    ]:
        tokenizer = family_tokenizer(name)
        encoded = encode_conversation(tokenizer, SPACED)
        assert "".join(trained_pieces(tokenizer, encoded)).strip() == expected.strip()


def test_system_prompt_moved_by_mistral_nemo_stays_untrained():
    tokenizer = family_tokenizer("mistral-nemo")
    messages = [
        turn("system", "Answer briefly."),
        *MULTI,
        turn("user", "And anvils?"),
        turn("assistant", "Anvils too."),
    ]
    encoded = encode_conversation(tokenizer, messages)
    assert trained_pieces(tokenizer, encoded) == [
        "The refund window is 45 days.</s>",
        "Acme Corp sells rockets and anvils.</s>",
        "Anvils too.</s>",
    ]


def test_truncation_keeps_exactly_the_surviving_answer_tokens():
    tokenizer = family_tokenizer("chatml")
    full = encode_conversation(tokenizer, SINGLE)
    first_trained = next(i for i, label in enumerate(full.labels) if label != IGNORE_INDEX)
    cut = first_trained + 3
    encoded = encode_conversation(tokenizer, SINGLE, max_seq_len=cut)
    assert encoded.truncated and len(encoded.input_ids) == cut
    assert encoded.labels == full.labels[:cut]
    assert encoded.trained_tokens == 3
    early = encode_conversation(tokenizer, SINGLE, max_seq_len=first_trained)
    assert early.truncated and early.fully_masked


def test_batched_equals_single_and_matches_both_locating_paths():
    tokenizer = family_tokenizer("llama-3.1")
    conversations = [SINGLE, MULTI, WITH_SYSTEM, SPACED, [turn("user", "no answer yet")]]
    batch = encode_conversations(tokenizer, conversations, max_seq_len=40)
    for i, messages in enumerate(conversations):
        single = encode_conversation(tokenizer, messages, max_seq_len=40)
        assert batch["input_ids"][i] == single.input_ids and batch["labels"][i] == single.labels
    assert all(label == IGNORE_INDEX for label in batch["labels"][4])
    assert template_profile(tokenizer).markers_ok  # SPACED went the two-render way, the others one


def test_whole_conversation_training_keeps_every_label():
    tokenizer = family_tokenizer("chatml")
    out = encode_conversations(tokenizer, [MULTI], train_on_responses_only=False)
    assert out["labels"][0] == out["input_ids"][0]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TemplateError, match="--chat-template"):
        encode_conversations(build_tiny_tokenizer(chat_template=None), [SINGLE])
    with pytest.raises(DataError, match="Conversation 0.*standardize_sharegpt"):
        encode_conversations(family_tokenizer("chatml"), [[{"from": "human", "value": "hi"}]])
    with pytest.raises(TemplateError, match="Conversation 1.*refused"):
        encode_conversations(family_tokenizer("gemma-2"), [SINGLE, WITH_SYSTEM])


def test_masked_share_and_summary():
    assert masked_share([IGNORE_INDEX, IGNORE_INDEX, 5, 6]) == 0.5
    assert masked_share([[IGNORE_INDEX] * 3, [1]]) == 0.75
    summary = summarize_labels([[IGNORE_INDEX] * 3, [IGNORE_INDEX, 7]])
    assert (summary.rows, summary.tokens, summary.trained_tokens, summary.fully_masked_rows) == (
        2,
        5,
        1,
        1,
    )
    assert masked_share([]) == 0.0


@pytest.mark.parametrize(
    "name, parts",
    [
        ("chatml", ("<|im_start|>user\n", "<|im_start|>assistant\n")),
        (
            "llama-3.1",
            (
                "<|start_header_id|>user<|end_header_id|>\n\n",
                "<|start_header_id|>assistant<|end_header_id|>\n\n",
            ),
        ),
        ("gemma-2", ("<start_of_turn>user\n", "<start_of_turn>model\n")),
        ("mistral-nemo", ("[INST]", "[/INST]")),
        ("alpaca", ("### Instruction:\n", "### Response:\n")),
        ("phi-3.5", ("<|user|>\n", "<|assistant|>\n")),
    ],
)
def test_guess_template_parts(name, parts):
    assert guess_template_parts(family_tokenizer(name)) == parts


def test_train_on_responses_only_on_datasets_and_trainers():
    from datasets import Dataset

    tokenizer = family_tokenizer("chatml")
    texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in (SINGLE, MULTI)]
    dataset = Dataset.from_dict(
        {"input_ids": [tokenizer.encode(t, add_special_tokens=False) for t in texts]}
    )
    masked = train_on_responses_only(dataset, tokenizer=tokenizer)
    for row, messages in zip(masked, (SINGLE, MULTI)):
        trained = [t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX]
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        # Unsloth's rule keeps everything up to the next user header, the newline included.
        assert tokenizer.decode(trained) == "".join(answer + "<|im_end|>\n" for answer in answers)
    trainer = SimpleNamespace(
        train_dataset=dataset, eval_dataset={"dev": dataset}, processing_class=tokenizer
    )
    assert train_on_responses_only(trainer) is trainer
    assert trainer.train_dataset["labels"] == masked["labels"]
    assert trainer.eval_dataset["dev"]["labels"] == masked["labels"]
    last_only = train_on_responses_only(
        {"input_ids": dataset["input_ids"]}, tokenizer=tokenizer, last_response_only=True
    )
    assert tokenizer.decode([t for t in last_only["labels"][1] if t != IGNORE_INDEX]) == (
        "Acme Corp sells rockets and anvils.<|im_end|>\n"
    )
    with pytest.raises(TemplateError, match="both"):
        train_on_responses_only(dataset, instruction_part="x", tokenizer=tokenizer)
