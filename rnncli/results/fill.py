"""The results of `rnn fill`."""

from __future__ import annotations

from dataclasses import dataclass

from .base import _Listed


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
