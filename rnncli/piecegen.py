"""Sampling whole words from a word-piece model: `rnn generate` for ``tokenizer.units: pieces``.

A piece model predicts units, but a continuation is asked for in words.  Each context (its units,
ending where a word ends) is continued one unit at a time, every context of a block in one batch
per step, until it holds ``n`` finished words:

- A unit is drawn from the model's distribution shaped as a word model's is
  (``generate.filter_distribution``: temperature, then ``top_k``, then ``top_p``; temperature 0
  takes the most probable allowed unit, the lower id on a tie), by inverse CDF with one uniform
  from the context's own generator (``generate.prompt_rngs``), so batching never changes a
  prompt's draws (given a forward pass that agrees to the last bit, as generate.py says).
- Where a word must begin (the first unit after the context, and the unit after ``<eos>`` or
  ``<unk>``), the units that continue a word get probability 0 before the shaping; so do all of
  them once a word holds ``max_units`` units (``wordsearch.MAX_UNITS``).  After a lone word mark
  ``▁`` (the start of a byte spelling, which spells nothing by itself) a unit that begins a word
  gets probability 0, so no word is empty.  ``<unk>`` (id 0) is never drawn unless ``show_unk``.
- A word is finished when the unit after it begins a word; ``<eos>`` (and ``<unk>``) is a word of
  one unit, finished as it is drawn.  After ``n`` words the continuation stops: the unit that
  would begin word n+1 is drawn but not kept (it only tells that word n ended).  With
  ``stop_at_eos`` a drawn ``<eos>`` is kept as the last word, as ``generate.generate`` keeps its
  ``stop_id``.

The log-probability is the model's own (before temperature and filtering) of the words, each by
the definition in wordsearch.py: P(w) = P(u1) / P(B) * P(u2 | u1) ... P(un | .. un-1) * P(B | .. un),
with ``B`` the event that the next unit begins a word, and no boundary after ``<eos>`` or
``<unk>`` (a word must begin there; infer.py scores a text the same way).  Summed over the words,
the boundary that ends a word cancels the one the next word is divided by (both come from the same
step's distribution), so the total is the drawn units' log-probabilities, minus log P(B) at the
first step and after each ``<eos>``/``<unk>``, plus log P(B) after the last word unless it is
``<eos>``/``<unk>`` (taken from the distribution the unit after it was drawn from: the probability
of the boundary, not of that unit).  It is the probability of the drawn spellings; a word spelled
otherwise than by ``Pieces.spell`` joins to the same letters but is another event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .generate import BATCH, block_rows, draw, filter_distribution, read_contexts
from .model import RNNModel
from .pieces import Pieces
from .tokenizer import Vocab
from .wordsearch import MAX_UNITS, log_begin, log_probs64

#: units that are a whole word on their own: after them a word must begin
_WHOLE = (Vocab.unk_id, Vocab.eos_id)


class _Row:
    """One context's continuation so far: the units of its finished words (``spellings``) and of
    the word being drawn (``units``, empty where a word must begin), ``logp`` their
    log-probability, and whether it is ``done``."""

    __slots__ = ("spellings", "units", "logp", "done")

    def __init__(self):
        self.spellings: list[list[int]] = []
        self.units: list[int] = []
        self.logp = 0.0
        self.done = False


def sample_words(
    model: RNNModel,
    pieces: Pieces,
    contexts: Sequence[np.ndarray],
    n: int,
    rngs: Sequence[np.random.Generator],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    show_unk: bool = False,
    stop_at_eos: bool = False,
    max_units: int = MAX_UNITS,
) -> list[tuple[list[str], float]]:
    """Continue each context (T,) of units, which ends where a word ends, by up to ``n`` sampled
    words: (the words, their log-probability) per context, by the rules of the module docstring.

    ``rngs``: one generator per context (``generate.prompt_rngs``); none is read at temperature 0.
    ``max_units``: the most units one word may hold (after that, only a unit that begins a word)."""
    found = sample_spellings(
        model, pieces, contexts, n, rngs, temperature=temperature, top_k=top_k, top_p=top_p,
        show_unk=show_unk, stop_at_eos=stop_at_eos, max_units=max_units,
    )  # fmt: skip
    return [([pieces.join(units) for units in spellings], logp) for spellings, logp in found]


def sample_spellings(
    model: RNNModel,
    pieces: Pieces,
    contexts: Sequence[np.ndarray],
    n: int,
    rngs: Sequence[np.random.Generator],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    show_unk: bool = False,
    stop_at_eos: bool = False,
    max_units: int = MAX_UNITS,
) -> list[tuple[list[list[int]], float]]:
    """``sample_words`` with each word as the units drawn for it: (units of each word, log-probability)."""
    rngs = list(rngs)
    if n < 1:
        return [([], 0.0) for _ in contexts]
    opts = (n, temperature, top_k, top_p, show_unk, stop_at_eos, max_units)
    block = max(1, min(BATCH, block_rows(model)))  # (block, V) float64 scores a step, within the working budget
    out: list[tuple[list[list[int]], float]] = []
    for lo in range(0, len(contexts), block):
        hi = min(lo + block, len(contexts))
        rows = _sample_block(model, pieces, contexts[lo:hi], rngs[lo:hi] if temperature > 0 else [], *opts)
        out += [(row.spellings, row.logp) for row in rows]
    return out


def _sample_block(
    model, pieces, contexts, rngs, n, temperature, top_k, top_p, show_unk, stop_at_eos, max_units
) -> list[_Row]:
    """``sample_spellings`` for one block of contexts, all stepped as one batch."""
    begins = pieces.begins  # (V,)
    cont, starts = np.flatnonzero(~begins), np.flatnonzero(begins)  # units that continue / begin a word
    mark = [pieces.mark_id]  # the units of a word that is only the word mark
    exclude = () if show_unk else (Vocab.unk_id,)
    rows = [_Row() for _ in contexts]
    state, h = read_contexts(model, [np.asarray(c, dtype=np.int32) for c in contexts])  # (B, H) after each
    live = np.arange(len(rows))  # the rows still drawing, in the order of state and h
    while live.size:
        logp = log_probs64(model, h)  # (b, V) the model's own
        lb = log_begin(logp, begins)  # (b,) log P(the next unit begins a word)
        drawing = [rows[r] for r in live.tolist()]
        lengths = np.array([len(row.units) for row in drawing])  # (b,)
        capped = lengths >= max_units
        bare = np.array([row.units == mark for row in drawing]) & ~capped  # (b,) a lone word mark so far
        shaped = logp.copy()
        shaped[np.ix_(np.flatnonzero((lengths == 0) | capped), cont)] = -np.inf  # a word must begin here
        shaped[np.ix_(np.flatnonzero(bare), starts)] = -np.inf  # a lone word mark is no word: its spelling goes on
        p = filter_distribution(shaped, temperature=temperature, top_k=top_k, top_p=top_p, exclude=exclude)
        units = draw(p, [rngs[r] for r in live]) if temperature > 0 else np.argmax(p, axis=1)  # (b,)
        for j, row in enumerate(drawing):
            _take_unit(row, begins, int(units[j]), float(logp[j, units[j]]), float(lb[j]), n, stop_at_eos)
        going = np.array([not row.done for row in drawing])  # (b,)
        if not going.all():
            keep = np.flatnonzero(going)
            live, units = live[keep], units[keep]
            state = [tuple(a[keep] for a in layer) for layer in state]
            if not live.size:
                break
        top, state, _ = model.hidden(units[None, :].astype(np.int32), state)  # (1, b, H)
        h = top[-1]
    return rows


def _take_unit(row: _Row, begins: np.ndarray, unit: int, lp: float, lb: float, n: int, stop_at_eos: bool) -> None:
    """Add one drawn ``unit`` to a row: ``lp`` its log-probability, ``lb`` log P(a word begins), both
    from the distribution it was drawn from."""
    starts = bool(begins[unit])
    if starts and row.units:  # the unit after a word: that word is finished, with its boundary
        row.logp += lb
        row.spellings.append(row.units)
        row.units = []
        if len(row.spellings) == n:  # the unit only told that word n ended
            row.done = True
            return
    row.logp += lp - lb if starts else lp  # a word's first unit: given that a word begins
    row.units.append(unit)
    if unit in _WHOLE:  # a word of one unit: finished as it is drawn, no boundary after it
        row.spellings.append(row.units)
        row.units = []
        row.done = len(row.spellings) == n or (stop_at_eos and unit == Vocab.eos_id)
