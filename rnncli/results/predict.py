"""The result of `rnn predict`: the next words."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """A next word and its probability over the whole vocabulary, P(word | prompt)."""

    word: str
    prob: float
