"""The results of `rnn eval`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figures:
    """How one direction of a model reads a text: cross-entropy and accuracy over every token."""

    tokens: int
    loss: float
    perplexity: float
    bits_per_word: float
    top1: float
    top5: float
    oov_rate: float
    #: a word-piece model's units predicted (``tokens`` counts its words, as every figure is per word)
    units: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class FillAccuracy:
    """`rnn eval --fill`: each word blanked and filled from its sentence, beside the next-word
    accuracy of the same words from the left context alone."""

    positions: int
    top1: float
    top5: float
    next_word_top1: float | None
    next_word_top5: float | None
    directions: tuple[str, ...]
    shortlist: int


@dataclass(frozen=True)
class Keystrokes:
    """`rnn eval --keystrokes`: the keystroke saving rate of completing the text's words."""

    suggestions: int
    words: int
    letters: int
    keystrokes: int
    saving_rate: float


@dataclass(frozen=True)
class Evaluation(Figures):
    """`rnn eval`: the figures of the forward model (the backward one's for a backward-only model),
    the backward model's beside them for a two-way one, and the optional fill and keystroke figures.
    Gates are the caller's: compare ``perplexity`` or ``top5`` with your threshold."""

    direction: str
    backward: Figures | None = None
    fill: FillAccuracy | None = None
    keystrokes: Keystrokes | None = None
