"""The most probable next whole words of a word-piece model: a search over pieces.

A word-piece model predicts units, but `rnn predict` shows words.  From the state after a context,
a word ``w`` spelled by units ``u1 .. un`` has the probability (Pimentel & Meister 2024)

    P(w) = P(u1) / P(B) * P(u2 | u1) * ... * P(un | .. un-1) * P(B | .. un)

where ``B`` is the event that the next unit begins a word (``Pieces.begins``): the first unit is
conditioned on a word beginning (the word before ended, and counted it), and the word ends only if
the unit after it begins another.  ``<eos>`` is a word of one unit (after it a word must begin).
Only a word's own spelling (``Pieces.spell``) counts as the word: another sequence of pieces that
joins to the same letters is not what the model was taught, and is not offered.

``search`` is a beam search: each round steps every kept prefix once (all queries and prefixes in
one batch), turns each prefix into a finished word (times its boundary), and keeps the ``width``
best extensions per query.  A query stops when no prefix can beat its k-th word any more (a
prefix's probability bounds every word that extends it).  ``exact_search`` is the best-first search
without a width, the reference the default width was measured against.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .model import RNNModel, State
from .pieces import Pieces
from .tokenizer import EOS, Vocab

#: kept prefixes per query and round (measured: benchmarks/bench_pieces.py --width)
DEFAULT_WIDTH = 8
#: the longest spelling a search follows (a word of more units is not offered)
MAX_UNITS = 24
#: queries per batch: (queries x width) x units floats stay within a few tens of MB
_QUERIES = 256


def log_begin(lp: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """log P(the next unit begins a word), from log-probabilities (n, V): (n,)."""
    sub = lp[:, begins]
    top = sub.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.exp(sub - top).sum(axis=1))


def log_probs64(model: RNNModel, hidden: np.ndarray) -> np.ndarray:
    return model.log_probs(hidden).astype(np.float64)


@dataclass
class Constraint:
    """What the words may be: ``allowed`` (V,) bool mask of first units, ``follows(units, text)``
    the continuation units allowed after a prefix spelled ``text``, ``accept(word)`` the finished
    words kept (word completion constrains all three to the typed letters)."""

    first: np.ndarray | None = None
    follows: Callable[[str], np.ndarray] | None = None
    accept: Callable[[str], bool] | None = None


class _Found:
    """The best finished words of one query: at most k, best first."""

    __slots__ = ("k", "words")

    def __init__(self, k: int):
        self.k, self.words = k, {}

    def bound(self) -> float:
        if len(self.words) < self.k:
            return -np.inf
        return sorted(self.words.values(), reverse=True)[self.k - 1]

    def add(self, word: str, logp: float) -> None:
        if logp > self.words.get(word, -np.inf):
            self.words[word] = logp
            if len(self.words) > 2 * self.k:  # keep it small: only the k best can ever be shown
                self.words = dict(sorted(self.words.items(), key=lambda kv: -kv[1])[: self.k])

    def best(self) -> list[tuple[str, float]]:
        return sorted(self.words.items(), key=lambda kv: (-kv[1], kv[0]))[: self.k]


def _take(state: State, rows: np.ndarray) -> State:
    return [tuple(a[rows] for a in layer) for layer in state]


def search(
    model: RNNModel,
    pieces: Pieces,
    state: State,
    lp0: np.ndarray,
    k: int,
    *,
    width: int = DEFAULT_WIDTH,
    eos: bool = False,
    constraints: Sequence[Constraint] | None = None,
    max_units: int = MAX_UNITS,
) -> list[list[tuple[str, float]]]:
    """The k most probable next words of each query, best first, as (word, log-probability).

    ``state``: the model's state after each query's context (Q rows); ``lp0`` (Q, V): its next-unit
    log-probabilities.  ``eos``: ``<eos>`` may be one of the words.  ``constraints``: one per query
    (word completion).  ``<unk>`` is never a word here."""
    out: list[list[tuple[str, float]]] = []
    for lo in range(0, len(lp0), _QUERIES):
        rows = np.arange(lo, min(lo + _QUERIES, len(lp0)))
        cons = constraints[lo : lo + len(rows)] if constraints is not None else None
        out += _search_block(model, pieces, _take(state, rows), lp0[rows], k, width, eos, cons, max_units)
    return out


def _search_block(model, pieces, state, lp0, k, width, eos, constraints, max_units):
    Q, W = len(lp0), width
    found = [_Found(k) for _ in range(Q)]
    begins = pieces.begins
    lb0 = log_begin(lp0, begins)  # (Q,)
    if eos:
        for q in range(Q):
            if constraints is None or constraints[q].accept is None or constraints[q].accept(EOS):
                found[q].add(EOS, float(lp0[q, Vocab.eos_id] - lb0[q]))
    first = begins.copy()
    first[[Vocab.unk_id, Vocab.eos_id]] = False
    scores = lp0 - lb0[:, None]  # (Q, V): the first unit, given that a word begins
    scores[:, ~first] = -np.inf
    if constraints is not None:
        for q, c in enumerate(constraints):
            if c.first is not None:
                scores[q, ~c.first] = -np.inf
    # the W best first units of every query: rows q*W .. q*W+W-1
    pick = np.argsort(-scores, axis=1, kind="stable")[:, :W]  # (Q, W)
    logp = np.take_along_axis(scores, pick, axis=1).reshape(-1)  # (Q*W,)
    units = pick.reshape(-1)
    seqs: list[tuple[int, ...]] = [(int(u),) for u in units]
    state = _take(state, np.repeat(np.arange(Q), W))
    active = np.arange(Q)  # the queries still searching; rows are active[i]*... in blocks of W
    cont = np.flatnonzero(~begins)  # the units that continue a word
    for _ in range(max_units):
        if not active.size:
            break
        top, state, _ = model.hidden(units.astype(np.int32)[None, :], state)
        lp = log_probs64(model, top[0])  # (R, V)
        ended = logp + log_begin(lp, begins)  # (R,) the prefix as a finished word
        _finish(found, active, W, ended, seqs, pieces, constraints)
        ext = logp[:, None] + lp[:, cont]  # (R, C)
        bounds = np.array([found[q].bound() for q in active])  # (A,)
        ext[ext <= np.repeat(bounds, W)[:, None]] = -np.inf  # cannot beat the k-th word: dropped
        if constraints is not None:
            _constrain(ext, active, W, seqs, pieces, constraints, cont)
        flat = ext.reshape(len(active), W * len(cont))  # (A, W*C)
        take = min(W, flat.shape[1])
        best = np.argpartition(-flat, take - 1, axis=1)[:, :take]  # (A, W)
        new_logp = np.take_along_axis(flat, best, axis=1)  # (A, W)
        alive = np.isfinite(new_logp).any(axis=1)  # a query whose every extension was dropped is done
        rows = (np.arange(len(active))[:, None] * W + best // len(cont))[alive].reshape(-1)
        units = cont[(best % len(cont))[alive].reshape(-1)]
        logp = new_logp[alive].reshape(-1)
        seqs = [seqs[r] + (int(u),) for r, u in zip(rows.tolist(), units.tolist())]
        state = _take(state, rows)
        active = active[alive]
    return [f.best() for f in found]


def _finish(found, active, W, ended, seqs, pieces, constraints) -> None:
    """Offer each finished prefix as a word to its query: its own spelling only, above the k-th."""
    bounds = {int(q): found[q].bound() for q in active}
    for r in np.flatnonzero(np.isfinite(ended)).tolist():
        q = int(active[r // W])
        if ended[r] <= bounds[q]:
            continue
        seq = seqs[r]
        word = pieces.join(seq)
        spelled = pieces.spell(word)
        if len(spelled) != len(seq) or tuple(spelled.tolist()) != seq:
            continue  # another spelling of these letters: not the word the model learnt
        c = constraints[q] if constraints is not None else None
        if c is not None and c.accept is not None and not c.accept(word):
            continue
        found[q].add(word, float(ended[r]))
        bounds[q] = found[q].bound()


def _constrain(ext, active, W, seqs, pieces, constraints, cont) -> None:
    for i, q in enumerate(active.tolist()):
        c = constraints[q]
        if c.follows is None:
            continue
        for j in range(W):
            r = i * W + j
            if r < len(seqs):
                ext[r, ~c.follows(pieces.join(seqs[r]))[cont]] = -np.inf


def exact_search(
    model: RNNModel, pieces: Pieces, state: State, lp0: np.ndarray, k: int, max_units: int = MAX_UNITS
) -> list[tuple[str, float]]:
    """The exact k most probable words of one query (best-first, no width): slow, for measuring."""
    found = _Found(k)
    begins = pieces.begins
    lb0 = float(log_begin(lp0[None, :], begins)[0])
    heap = [(-(float(lp0[u]) - lb0), (int(u),), state) for u in np.flatnonzero(begins) if u > Vocab.eos_id]
    heapq.heapify(heap)
    while heap:
        neg, seq, st = heapq.heappop(heap)
        if -neg <= found.bound():
            break  # no prefix left can beat the k-th word
        top, after, _ = model.hidden(np.array([[seq[-1]]], dtype=np.int32), st)
        lp = log_probs64(model, top[0])[0]
        word = pieces.join(seq)
        if tuple(pieces.spell(word).tolist()) == seq:
            found.add(word, -neg + float(log_begin(lp[None, :], begins)[0]))
        if len(seq) < max_units:
            for u in np.flatnonzero(~begins):
                value = -neg + float(lp[u])
                if value > found.bound():
                    heapq.heappush(heap, (-value, seq + (int(u),), after))
    return found.best()


def word_hits(
    model: RNNModel, pieces: Pieces, units: np.ndarray, words: Sequence[str], width: int = DEFAULT_WIDTH
) -> tuple[int, int]:
    """(top-1 hits, top-5 hits) of the whole next word over a text's unit stream read after <eos>:
    at each word's start, the five words the search offers (``<eos>`` may be one, ``<unk>`` never)
    against the word that comes (``words``, one per word of the stream)."""
    inputs = np.concatenate([[Vocab.eos_id], units[:-1]]).astype(np.int32)
    starts = np.flatnonzero(pieces.begins[units])  # (W,) the step before which each word begins
    if len(starts) != len(words):
        raise ValueError(f"{len(words)} words but {len(starts)} word beginnings in the units")
    top1 = top5 = 0
    state = model.initial_state(1)
    window = 256
    for lo in range(0, len(inputs), window):
        top, after, cache = model.hidden(inputs[lo : lo + window, None], state, keep_cache=True)
        here = starts[(starts >= lo) & (starts < lo + window)]  # the words that begin in this window
        if here.size:
            steps = model.step_states(cache)  # per layer (T, 1, H): the state after each step
            rows = here - lo
            st = [tuple(a[rows, 0] for a in layer) for layer in steps]  # (n, H) per array
            lp0 = log_probs64(model, top[rows, 0])
            found = search(model, pieces, st, lp0, 5, width=width, eos=True)
            first = np.searchsorted(starts, here[0])
            for i, best in enumerate(found):
                target = words[first + i]
                offered = [w for w, _ in best]
                top1 += bool(offered) and offered[0] == target
                top5 += target in offered
        state = after
    return top1, top5
