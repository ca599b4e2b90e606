"""The results of `rnn score`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WordScore:
    """A token of a scored line and its probability after the words before it."""

    word: str
    prob: float
    unk: bool = False  # the word is outside the vocabulary (scored as <unk>)


@dataclass(frozen=True)
class Score:
    """A line scored as a sentence on its own, its ``<eos>`` included: ``tokens`` counts the line's
    tokens (without ``<eos>``), ``logprob`` is natural-log, ``perplexity`` None for an empty line."""

    line: str
    tokens: int
    logprob: float
    perplexity: float | None
    words: tuple[WordScore, ...] = ()
