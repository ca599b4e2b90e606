"""What the Python API returns: frozen dataclasses whose field names are the JSON keys that the CLI
prints, so that ``dataclasses.asdict(result)`` is the JSON record (the CLI adds ``checkpoint``).

Imports nothing but the standard library: a caller can type-check against these without NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prediction:
    """A next word and its probability over the whole vocabulary, P(word | prompt)."""

    word: str
    prob: float


@dataclass(frozen=True)
class Completion:
    """A vocabulary word that completes the prompt's unfinished last word: ``prob`` over the whole
    vocabulary, ``match_prob`` its share among the words that match the prefix."""

    word: str
    prob: float
    match_prob: float


class _Listed:
    """Results that read as the list of their items (``predictions``, ``fills``): ``len``, indexing
    and iteration go to that list, so ``m.complete(p)[0].word`` works."""

    _items: str = ""

    def __len__(self) -> int:
        return len(getattr(self, self._items))

    def __iter__(self) -> Iterator[Any]:
        return iter(getattr(self, self._items))

    def __getitem__(self, i):
        return getattr(self, self._items)[i]


@dataclass(frozen=True)
class Completions(_Listed):
    """The completions of one prompt: its context's unfinished word ``prefix``, how many vocabulary
    words start with it (``matches``) and their total probability (``match_mass``); best first."""

    _items = "predictions"
    prompt: str
    prefix: str
    matches: int
    match_mass: float
    predictions: tuple[Completion, ...] = ()


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


@dataclass(frozen=True)
class Fill:
    """Words for the blanks of a line (one per blank), the line with them in place, and the
    probability of that sentence renormalised over the candidates that were scored."""

    words: tuple[str, ...]
    text: str
    prob: float


@dataclass(frozen=True)
class Fills(_Listed):
    """The fills of one line, best first."""

    _items = "fills"
    line: str
    blanks: int
    fills: tuple[Fill, ...] = ()


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
class Evaluation:
    """`rnn eval`: the figures of the forward model (the backward one's for a backward-only model),
    the backward model's beside them for a two-way one, and the optional fill and keystroke figures.
    Gates are the caller's: compare ``perplexity`` or ``top5`` with your threshold."""

    tokens: int
    loss: float
    perplexity: float
    bits_per_word: float
    top1: float
    top5: float
    oov_rate: float
    direction: str
    backward: Figures | None = None
    fill: FillAccuracy | None = None
    keystrokes: Keystrokes | None = None


@dataclass(frozen=True)
class TrainResult:
    """The summary of a training run, the fields of `rnn train --format json`."""

    checkpoint: str
    run_dir: str
    epochs: int
    epochs_completed: int
    partial_epoch: float
    steps: int
    tokens: int
    train_seconds: float
    tokens_per_sec: float | None
    session_tokens: int
    session_seconds: float
    valid_loss: float | None
    valid_ppl: float | None
    best_valid_loss: float | None
    best_valid_ppl: float | None
    lr: float
    vocab_size: int
    params: int
