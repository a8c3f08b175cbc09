"""Which examples go into which micro-batch, in an order fixed by the seed, and how they are collated.

The order is a pure function of (seed, epoch): a resumed run asks for micro-batch number N and
gets exactly what the uninterrupted run got. Two layouts:

- padded: `batch_size` examples per micro-batch, padded to the longest one;
- packed (padding-free): examples are concatenated into one row of at most
  `batch_size * max_seq_len` tokens; `position_ids` restart at every example so attention
  stays inside each example (transformers builds the block-diagonal mask from them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from infuse.train.examples import IGNORE, Example


@dataclass
class BatchPlan:
    """An endless, deterministic stream of micro-batches (lists of example indices)."""

    groups: list[list[int]]  # micro-batches of one epoch before shuffling
    seed: int

    @classmethod
    def build(cls, examples: list[Example], *, batch_size: int, max_seq_len: int,
              packing: bool, seed: int) -> BatchPlan:
        """Group examples into micro-batches once; each epoch shuffles the groups' order."""
        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)
        if not packing:
            groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            return cls(groups=groups, seed=seed)
        budget = batch_size * max_seq_len
        groups: list[list[int]] = []
        fill: list[int] = []  # tokens used per open group (first fit, sorted longest first)
        for index in sorted(order, key=lambda i: -len(examples[i].input_ids)):
            length = len(examples[index].input_ids)
            slot = next((g for g, used in enumerate(fill) if used + length <= budget), None)
            if slot is None:
                groups.append([index])
                fill.append(length)
            else:
                groups[slot].append(index)
                fill[slot] += length
        return cls(groups=groups, seed=seed)

    @property
    def per_epoch(self) -> int:
        return len(self.groups)

    def micro_batch(self, number: int) -> list[int]:
        """The example indices of global micro-batch `number` (0-based, across epochs)."""
        epoch, position = divmod(number, self.per_epoch)
        return self._epoch_order(epoch)[position]

    def _epoch_order(self, epoch: int) -> list[list[int]]:
        cached = getattr(self, "_cache", None)
        if cached and cached[0] == epoch:
            return cached[1]
        order = list(range(self.per_epoch))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        groups = [self.groups[i] for i in order]
        self._cache = (epoch, groups)
        return groups


def collate(examples: list[Example], *, packing: bool, pad_id: int):
    """Tensors for one micro-batch: input_ids, targets, and attention_mask or position_ids."""
    import torch

    if packing:
        input_ids, targets, positions = [], [], []
        for example in examples:
            input_ids.extend(example.input_ids)
            targets.extend(example.targets)
            positions.extend(range(len(example.input_ids)))
        return {
            "input_ids": torch.tensor([input_ids]),
            "targets": torch.tensor([targets]),
            "position_ids": torch.tensor([positions]),
        }
    longest = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), longest), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        targets[row, :length] = torch.tensor(example.targets)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "targets": targets, "attention_mask": attention_mask}
