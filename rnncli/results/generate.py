"""The results of `rnn predict --generate` and `--beam`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    """A prompt continued by sampled words: the whole ``text``, the ``continuation`` (its words) and
    the model's own log-probability of them (before temperature and filtering)."""

    prompt: str
    text: str
    continuation: tuple[str, ...]
    logprob: float


@dataclass(frozen=True)
class Beam:
    """One continuation found by beam search, with its log-probability."""

    text: str
    continuation: tuple[str, ...]
    logprob: float
