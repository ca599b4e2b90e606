"""The results of `rnn predict --complete`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import _Listed


@dataclass(frozen=True)
class Completion:
    """A vocabulary word that completes the prompt's unfinished last word: ``prob`` over the whole
    vocabulary, ``match_prob`` its share among the words that match the prefix."""

    word: str
    prob: float
    match_prob: float


@dataclass(frozen=True)
class Completions(_Listed):
    """The completions of one prompt: its context's unfinished word ``prefix``, how many vocabulary
    words start with it (``matches``; None for a word-piece model, whose words no vocabulary bounds)
    and their total probability (``match_mass``: for a word-piece model, that the next word starts
    with the prefix); best first."""

    _items = "predictions"
    prompt: str
    prefix: str
    matches: int | None
    match_mass: float
    predictions: tuple[Completion, ...] = ()
