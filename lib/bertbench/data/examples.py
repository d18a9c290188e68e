"""The in-memory form every reader returns: parallel lists of texts, optional text pairs, labels and ids."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, the line and the field."""


@dataclasses.dataclass
class Examples:
    """Labelled (or unlabelled) single texts or text pairs.

    Attributes:
        text_a: first text of each example.
        text_b: second text of each example, or None for single-text tasks.
        labels: class indices (int), regression targets (float), or None for unlabelled splits (GLUE test).
        ids: an identifier per example (the file's index column, or the line number).
        source: where the examples came from, for messages.
    """

    text_a: list[str]
    text_b: list[str] | None = None
    labels: list[int] | list[float] | None = None
    ids: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.text_a)
        for name in ("text_b", "labels", "ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(f"{self.source}: {name} has {len(value)} entries but text_a has {n}")
        if self.ids is None:
            self.ids = [str(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.text_a)

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def select(self, indices: Sequence[int]) -> Examples:
        """The examples at ``indices``, in that order."""
        pick = lambda values: None if values is None else [values[i] for i in indices]  # noqa: E731
        return Examples(pick(self.text_a), pick(self.text_b), pick(self.labels), pick(self.ids), self.source)

    def split(self, fraction: float, seed: int) -> tuple[Examples, Examples]:
        """Shuffle with ``seed`` and split off ``fraction`` of the examples: (rest, held_out)."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        n_held = max(1, round(fraction * len(self))) if fraction > 0 else 0
        return self.select(order[n_held:]), self.select(order[:n_held])

    def subsample(self, limit: int, seed: int) -> Examples:
        """At most ``limit`` examples drawn at random with ``seed`` (all of them when ``limit`` is 0 or larger)."""
        if limit <= 0 or limit >= len(self):
            return self
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        return self.select(sorted(order[:limit]))
