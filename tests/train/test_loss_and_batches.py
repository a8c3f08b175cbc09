"""The chunked cross-entropy equals the plain one; batches are deterministic; packing is exact."""

from __future__ import annotations

import torch

from infuse.train.batches import BatchPlan, collate
from infuse.train.examples import IGNORE, Example, shift_targets
from infuse.train.loss import linear_cross_entropy_sum


def test_chunked_cross_entropy_matches_reference():
    torch.manual_seed(0)
    hidden = torch.randn(2, 37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64)
    targets = torch.randint(0, 50, (2, 37))
    targets[0, :5] = IGNORE
    loss, count = linear_cross_entropy_sum(hidden, weight, targets, chunk_rows=7)
    loss.backward()
    ours = hidden.grad.clone()
    hidden.grad = None
    reference = torch.nn.functional.cross_entropy(
        (hidden @ weight.T).reshape(-1, 50), targets.reshape(-1), reduction="sum"
    )
    reference.backward()
    assert count == 2 * 37 - 5
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours, hidden.grad, rtol=1e-4, atol=1e-5)
    assert ours[0, :5].abs().sum() == 0  # masked rows get no gradient


def _examples(lengths):
    return [Example(input_ids=list(range(3, 3 + n)), targets=shift_targets(list(range(3, 3 + n))), row=i)
            for i, n in enumerate(lengths)]


def test_plan_is_deterministic_and_covers_every_example():
    examples = _examples([5, 9, 3, 7, 4, 8, 6])
    plan = BatchPlan.build(examples, batch_size=2, max_seq_len=16, packing=False, seed=1)
    again = BatchPlan.build(examples, batch_size=2, max_seq_len=16, packing=False, seed=1)
    first_epoch = [plan.micro_batch(i) for i in range(plan.per_epoch)]
    assert first_epoch == [again.micro_batch(i) for i in range(plan.per_epoch)]
    assert sorted(i for group in first_epoch for i in group) == list(range(7))
    second_epoch = [plan.micro_batch(plan.per_epoch + i) for i in range(plan.per_epoch)]
    assert second_epoch != first_epoch  # reshuffled per epoch


def test_packing_fills_the_token_budget():
    examples = _examples([10, 10, 6, 4, 12, 3])
    plan = BatchPlan.build(examples, batch_size=1, max_seq_len=16, packing=True, seed=0)
    assert sorted(i for group in plan.groups for i in group) == list(range(6))
    for group in plan.groups:
        assert sum(len(examples[i].input_ids) for i in group) <= 16
    assert plan.per_epoch == 3  # 45 tokens in bins of 16


def test_collate_pads_and_masks():
    batch = collate(_examples([3, 5]), packing=False, pad_id=0)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert batch["targets"][0].tolist() == [4, 5, IGNORE, IGNORE, IGNORE]
    packed = collate(_examples([3, 2]), packing=True, pad_id=0)
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert packed["targets"].tolist() == [[4, 5, IGNORE, 4, IGNORE]]


def test_packed_forward_equals_separate_forwards(tiny_model_dir):
    """position_ids restart per example, so packed attention never crosses examples.

    Only without a KV cache does transformers build the block mask from position_ids
    (the training forward passes use_cache=False).
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    examples = _examples([7, 11, 5])
    packed = collate(examples, packing=True, pad_id=0)
    with torch.no_grad():
        together = model.model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                               use_cache=False)[0]
        start = 0
        for example in examples:
            alone = model.model(input_ids=torch.tensor([example.input_ids]))[0]
            end = start + len(example.input_ids)
            torch.testing.assert_close(together[:, start:end], alone, rtol=1e-4, atol=1e-5)
            start = end
