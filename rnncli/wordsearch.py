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
prefix's probability bounds every word that extends it), and a prefix that cannot is not stepped:
each round steps a query's k best prefixes first, then the others only where the words those
found leave them still able to win.  ``exact_search`` is the best-first search
without a width, the reference the default width was measured against.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .model import RNNModel, State
from .pieces import WORD_MARK, Pieces
from .tokenizer import EOS, Vocab

#: kept prefixes per query and round (measured: benchmarks/bench_pieces.py --width)
DEFAULT_WIDTH = 8
#: the longest spelling a search follows (a word of more units is not offered)
MAX_UNITS = 24
#: queries per batch: (queries x width) x units floats stay within a few tens of MB
_QUERIES = 256


def log_begin(lp: np.ndarray, begins: np.ndarray) -> np.ndarray:
    """log P(the next unit begins a word), from log-probabilities (n, V): (n,), in lp's precision.

    One exp and one matrix-vector product; rows whose sum underflows are summed again with their
    largest term factored out."""
    with np.errstate(divide="ignore", under="ignore"):
        out = np.log(np.exp(lp) @ begins.astype(lp.dtype))
    bad = ~np.isfinite(out)
    if bad.any():
        sub = lp[bad][:, begins]
        top = sub.max(axis=1, keepdims=True)
        out[bad] = top[:, 0] + np.log(np.exp(sub - top).sum(axis=1))
    return out


def log_probs64(model: RNNModel, hidden: np.ndarray) -> np.ndarray:
    return model.log_probs(hidden).astype(np.float64)


class _Found:
    """The best finished words of one query: at most k, best first."""

    __slots__ = ("_bound", "floor", "k", "words")

    def __init__(self, k: int, floor: float = -np.inf):
        self.k, self.words, self.floor = k, {}, floor
        self._bound = floor

    def bound(self) -> float:
        """What a word must beat to matter: the k-th word found, or the floor."""
        return self._bound

    def add(self, word: str, logp: float) -> None:
        if logp > self.words.get(word, -np.inf):
            self.words[word] = logp
            if len(self.words) > 2 * self.k:  # keep it small: only the k best can ever be shown
                self.words = dict(sorted(self.words.items(), key=lambda kv: -kv[1])[: self.k])
            if len(self.words) >= self.k:  # the bound changes only here: kept, not sorted at every ask
                self._bound = max(self.floor, sorted(self.words.values(), reverse=True)[self.k - 1])

    def best(self) -> list[tuple[str, float]]:
        return sorted(self.words.items(), key=lambda kv: (-kv[1], kv[0]))[: self.k]


def _take(state: State, rows: np.ndarray) -> State:
    return [tuple(a[rows] for a in layer) for layer in state]


@dataclass
class _Beam:
    """Prefixes being searched, ``width`` rows per query (a dead row has log-probability -inf):
    ``seqs[r]`` the units of row r, ``logp`` their probability (the first unit's given that a word
    begins), ``state`` the model's state before the last unit of each row is read."""

    queries: np.ndarray  # (A,) the queries still searching, in row order
    seqs: list[tuple[int, ...]]
    logp: np.ndarray  # (A*W,)
    state: State


def search(
    model: RNNModel,
    pieces: Pieces,
    state: State,
    lp0: np.ndarray,
    k: int,
    *,
    width: int = DEFAULT_WIDTH,
    eos: bool = False,
    max_units: int = MAX_UNITS,
    floors: np.ndarray | None = None,
) -> list[list[tuple[str, float]]]:
    """The k most probable next words of each query, best first, as (word, log-probability).

    ``state``: the model's state after each query's context (Q rows); ``lp0`` (Q, V): its next-unit
    log-probabilities.  ``eos``: ``<eos>`` may be one of the words; ``<unk>`` never is.
    ``floors`` (Q,): only the words above a query's floor are wanted (a prefix at or below it is
    dropped, which leaves the words above it and their order as they are)."""
    out: list[list[tuple[str, float]]] = []
    width = max(1, min(width, lp0.shape[1]))
    for lo in range(0, len(lp0), _QUERIES):
        rows = np.arange(lo, min(lo + _QUERIES, len(lp0)))
        found = [_Found(k, -np.inf if floors is None else float(floors[q])) for q in rows]
        beam = _first_units(pieces, _take(state, rows), lp0[rows], found, width, eos)
        _run(model, pieces, beam, found, width, max_units)
        out += [f.best() for f in found]
    return out


def _first_units(pieces, state, lp0, found, W, eos) -> _Beam:
    """The W most probable first units of each query (given that a word begins)."""
    Q = len(lp0)
    lb0 = log_begin(lp0, pieces.begins)  # (Q,)
    if eos:
        for q in range(Q):
            if lp0[q, Vocab.eos_id] - lb0[q] > found[q].floor:
                found[q].add(EOS, float(lp0[q, Vocab.eos_id] - lb0[q]))
    first = pieces.begins.copy()
    first[[Vocab.unk_id, Vocab.eos_id]] = False
    scores = (lp0 - lb0[:, None]).astype(np.float32)  # (Q, V): ranking needs no more than the model's precision
    scores[:, ~first] = -np.inf
    scores[scores <= np.array([f.floor for f in found], dtype=np.float32)[:, None]] = -np.inf
    W = min(W, scores.shape[1])
    pick = np.argpartition(-scores, W - 1, axis=1)[:, :W]  # (Q, W), in no order
    logp = np.take_along_axis(scores, pick, axis=1).reshape(-1)  # (Q*W,)
    seqs = [(int(u),) for u in pick.reshape(-1)]
    return _Beam(np.arange(Q), seqs, logp, _take(state, np.repeat(np.arange(Q), W)))


def _run(model, pieces, beam: _Beam, found: list[_Found], W: int, max_units: int) -> None:
    """Rounds of the beam search until no query's prefixes can beat its k-th word.

    A prefix at or below its query's bound (the k-th word found) can neither finish a word nor
    extend to one that beats it (a unit's log-probability is <= 0), so it is not read.  Each round
    reads every query's k best prefixes first: the words they finish raise the bound, and the other
    prefixes are read only where they are still above it (after the first round, about a third are);
    what the round finds is what reading them all would."""
    cont = np.flatnonzero(~pieces.begins)  # the units that continue a word
    k = found[0].k
    for _ in range(max_units):
        if not beam.queries.size:
            break
        A = len(beam.queries)
        order = np.argsort(-beam.logp.reshape(A, W), axis=1, kind="stable")  # (A, W) best first
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(W)[None, :], axis=1)
        rank = rank.reshape(-1)  # (R,) each row's place in its query
        ids = np.flatnonzero((rank < k) & (beam.logp > np.repeat(_bounds(found, beam, model.dtype), W)))
        lp, state = _read(model, pieces, beam, ids, found, W)
        bounds = _bounds(found, beam, model.dtype)  # raised by the words those rows finished
        rest = np.flatnonzero((rank >= k) & (beam.logp > np.repeat(bounds, W)))
        if rest.size:
            lp_rest, state_rest = _read(model, pieces, beam, rest, found, W)
            ids, lp = np.concatenate([ids, rest]), np.concatenate([lp, lp_rest])
            state = [tuple(np.concatenate(pair) for pair in zip(a, b)) for a, b in zip(state, state_rest)]
            bounds = _bounds(found, beam, model.dtype)
        beam = _extend(beam, ids, lp, bounds, cont, W, state)


def _bounds(found: list[_Found], beam: _Beam, dtype) -> np.ndarray:
    """(A,): what a word must beat, per query of the beam, in the model's precision (``dtype``)."""
    return np.array([found[q].bound() for q in beam.queries], dtype=dtype)


def _read(model, pieces, beam: _Beam, ids: np.ndarray, found, W: int):
    """Step the beam's rows ``ids`` once: their next-unit log-probabilities (n, V) and states, each
    prefix offered as a finished word (times its boundary)."""
    if not ids.size:
        return np.zeros((0, len(pieces)), dtype=np.float32), _take(beam.state, ids)
    last = np.array([beam.seqs[i][-1] if beam.seqs[i] else 0 for i in ids.tolist()], dtype=np.int32)
    top, state, _ = model.hidden(last[None, :], _take(beam.state, ids))
    lp = model.log_probs(top[0])  # (n, V) in the model's precision
    _finish(found, beam, W, ids, beam.logp[ids] + log_begin(lp, pieces.begins), pieces)
    return lp, state


def _extend(beam: _Beam, ids: np.ndarray, lp: np.ndarray, bounds: np.ndarray, cont: np.ndarray, W: int, state):
    """The next round's beam: per query, its W best extensions (a row's prefix, then a unit that
    continues a word: ``cont``, their ids) above its bound, ties to the lower row and unit; a query
    with fewer fills its rows with dead ones (-inf), one with none is done.  ``ids``: the beam's rows
    that were read, ``lp`` (n, V) and ``state`` their next-unit log-probabilities and states.

    Few extensions beat the bound: the rows that may have one are found by their best continuation,
    their units by one comparison (loosely, then exactly as ``prefix + lp > bound`` in the model's
    precision), and those are sorted, instead of partitioning every extension."""
    sub = np.take(lp, cont, axis=1)  # (n, C)
    prefix, floor = beam.logp[ids], bounds[ids // W]  # (n,) each
    with np.errstate(invalid="ignore"):  # a dead row (-inf) under no bound (-inf): NaN, which nothing beats
        loose = floor - prefix - 1e-3  # (n,) a continuation above it may beat the bound
    near = np.flatnonzero(sub.max(axis=1, initial=-np.inf) > loose)  # the rows that have one: few
    r, j = np.nonzero(sub[near] > loose[near, None])
    r = near[r]
    values = prefix[r] + sub[r, j]  # as the model's precision adds them
    good = values > floor[r]
    r, u, values = r[good], cont[j[good]], values[good]
    row = ids[r]
    q = row // W  # the query, as an index of beam.queries
    order = np.lexsort((u, row, -values, q))  # by query, best first, ties to the lower row and unit
    q, r, u, values = q[order], r[order], u[order], values[order]
    rank = np.arange(len(q)) - np.searchsorted(q, q)  # place within its query
    chosen = rank < W
    q, r, u, values, rank = q[chosen], r[chosen], u[chosen], values[chosen], rank[chosen]
    live, slot_of = np.unique(q, return_inverse=True)  # the queries that go on, and each entry's query
    pos = np.repeat(r[np.searchsorted(q, live)], W)  # dead rows: a live row's state
    units = np.zeros(len(pos), dtype=np.int64)
    logp = np.full(len(pos), -np.inf, dtype=values.dtype)  # float64 when the roots are (completion)
    at = slot_of * W + rank
    pos[at], units[at], logp[at] = r, u, values
    seqs = [beam.seqs[i] + (int(x),) for i, x in zip(ids[pos].tolist(), units.tolist())]
    return _Beam(beam.queries[live], seqs, logp, _take(state, pos))


def _finish(found, beam: _Beam, W: int, ids: np.ndarray, ended: np.ndarray, pieces) -> None:
    """Offer each finished prefix (rows ``ids``, ``ended`` their words' log-probabilities) as a word
    to its query: its own spelling only, above the k-th."""
    queries = beam.queries[ids // W]
    bounds = {q: found[q].bound() for q in set(queries.tolist())}
    floor = np.array([bounds[q] for q in queries.tolist()])
    for i in np.flatnonzero(np.isfinite(ended) & (ended > floor)).tolist():
        q = int(queries[i])
        if ended[i] <= bounds[q]:
            continue
        word = pieces.own_word(beam.seqs[ids[i]])
        if word is None:
            continue  # another spelling of these letters (not the word the model learnt), or no word
        found[q].add(word, float(ended[i]))
        bounds[q] = found[q].bound()


# ---------------------------------------------------------------- completion
def complete(
    model: RNNModel,
    pieces: Pieces,
    state: State,
    lp0: np.ndarray,
    prefixes: Sequence[str],
    k: int,
    *,
    accents: bool = False,
    width: int = DEFAULT_WIDTH,
    max_units: int = MAX_UNITS,
) -> list[tuple[list[tuple[str, float]], float]]:
    """Word completion for a word-piece model: per query, the k most probable words whose match key
    starts with the typed prefix's (complete.match_key: case and, unless ``accents``, accents
    ignored), as (word, log-probability), and the probability that the next word starts so.

    The units that can spell the prefix are followed exactly (every way of spelling the typed
    letters, a handful); the prefixes that cover it are the roots of the beam search, and their
    probabilities add up to the probability of the typed letters."""
    from .complete import match_key

    out = []
    for q, typed in enumerate(prefixes):
        found = [_Found(k)]
        roots, mass = _covering(model, pieces, _take(state, np.array([q])), lp0[q], match_key(typed, accents), accents)
        if roots:
            roots.sort(key=lambda r: -r[1])
            roots = roots[:width] + [((), -np.inf, None)] * max(0, width - len(roots))
            live = [r for r in roots if r[2] is not None]
            rows = [i for i, r in enumerate(roots) if r[2] is not None]
            stacked = _stack([r[2] for r in live], rows, width, model)
            beam = _Beam(np.array([0]), [r[0] for r in roots], np.array([r[1] for r in roots]), stacked)
            _run(model, pieces, beam, found, width, max_units)
        out.append((found[0].best(), mass))
    return out


class _KeyIndex:
    """Units by the letters they spell (complete.match_key), for the two questions completion asks:
    which units spell a start of the typed letters, and which spell all of them and go on."""

    def __init__(self, pieces: Pieces, accents: bool, units: np.ndarray):
        from .complete import match_key

        itos = pieces.vocab.itos
        keyed = []
        for u in units.tolist():
            p = itos[u]
            if u > Vocab.eos_id and not (p.startswith("<0x") and p.endswith(">")):  # no special, no byte
                keyed.append((match_key(p.lstrip(WORD_MARK), accents), u))
        keyed.sort()
        self.keys = [k for k, _ in keyed]
        self.ids = [u for _, u in keyed]
        self.by_key: dict[str, list[int]] = {}
        for k, u in keyed:
            self.by_key.setdefault(k, []).append(u)

    def within(self, rest: str) -> list[tuple[int, int]]:
        """(unit, letters) of the units that spell a proper start of ``rest`` (the empty one included)."""
        return [(u, n) for n in range(len(rest)) for u in self.by_key.get(rest[:n], ())]

    def beyond(self, rest: str) -> list[int]:
        """The units that spell all of ``rest``, and maybe more."""
        lo = bisect.bisect_left(self.keys, rest)
        hi = bisect.bisect_left(self.keys, rest + "\U0010ffff", lo)
        return self.ids[lo:hi]


def _indexes(pieces: Pieces, accents: bool) -> tuple[_KeyIndex, _KeyIndex]:
    """(first units, continuation units) indexed by their letters, built once per piece model."""
    cache = pieces.__dict__.setdefault("_key_indexes", {})
    if accents not in cache:
        cache[accents] = (
            _KeyIndex(pieces, accents, np.flatnonzero(pieces.begins)),
            _KeyIndex(pieces, accents, np.flatnonzero(~pieces.begins)),
        )
    return cache[accents]


def _covering(model, pieces, state, lp0, key: str, accents: bool):
    """The unit sequences that spell the typed ``key`` and end with it or go beyond it:
    [(units, log-probability, state before the last unit)], and their total probability."""
    first, rest_index = _indexes(pieces, accents)
    lb0 = float(log_begin(lp0[None, :], pieces.begins)[0])
    roots: list = [((u,), float(lp0[u]) - lb0, state) for u in first.beyond(key)]
    inside = [((u,), float(lp0[u]) - lb0, n, state) for u, n in first.within(key)]
    for _ in range(len(key) + 2):
        if not inside:
            break
        last = np.array([s[-1] for s, _, _, _ in inside], dtype=np.int32)
        st = _stack([i[3] for i in inside], list(range(len(inside))), len(inside), model)
        top, after, _ = model.hidden(last[None, :], st)
        lp = log_probs64(model, top[0])
        current, inside = inside, []
        for r, (seq, logp, done, _) in enumerate(current):
            here = _take(after, np.array([r]))
            rest = key[done:]
            roots += [(seq + (c,), logp + float(lp[r, c]), here) for c in rest_index.beyond(rest)]
            inside += [(seq + (c,), logp + float(lp[r, c]), done + n, here) for c, n in rest_index.within(rest)]
        inside.sort(key=lambda item: -item[1])
        inside = inside[: 4 * DEFAULT_WIDTH]  # a pathological vocabulary: keep the search bounded
    mass = float(np.exp(np.logaddexp.reduce([r[1] for r in roots]))) if roots else 0.0
    return roots, mass


def _stack(states: list, rows: list[int], width: int, model: RNNModel) -> State:
    """One state of ``width`` rows: row ``rows[i]`` from ``states[i]`` (one row each), zeros elsewhere."""
    out = model.initial_state(width)
    for i, st in zip(rows, states):
        for layer, src in zip(out, st):
            for a, b in zip(layer, src):
                a[i] = b[0]
    return out


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
        word = pieces.own_word(seq)
        if word is not None:
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
    at each word's start, whether the word that comes (``words``, one per word of the stream) is
    the first, or among the five, that the search offers (``<eos>`` may be one, ``<unk>`` never).

    The search looks only for the words more probable than the one that comes (its probability is
    the floor): they decide its place, and finding them is cheap when it is probable."""
    begins = pieces.begins
    if int(begins[units].sum()) != len(words):
        raise ValueError(f"{len(words)} words but {int(begins[units].sum())} word beginnings in the units")
    starts = np.flatnonzero(begins[units])
    top1 = top5 = 0
    for first, st, lp0, floors in _word_starts(model, pieces, units, starts):
        for i, best in enumerate(search(model, pieces, st, lp0, 5, width=width, eos=True, floors=floors)):
            offered = [w for w, _ in best]  # the target and the words above it, in predict's order
            top1 += bool(offered) and offered[0] == words[first + i]
            top5 += words[first + i] in offered
    return top1, top5


def _word_starts(model: RNNModel, pieces: Pieces, units: np.ndarray, starts=None, window: int = 256):
    """At each word of a unit stream read after <eos>: yields (index of the first word in the block,
    the state before each word of the block (n rows), their next-unit log-probabilities (n, V), and
    each word's log-probability less a thousandth of a nat (n,), -inf where the word runs past the
    block).  ``starts``: where the words begin (computed when not given)."""
    inputs = np.concatenate([[Vocab.eos_id], units[:-1]]).astype(np.int32)
    if starts is None:
        starts = np.flatnonzero(pieces.begins[units])  # the step before which each word begins
    special = np.isin(units, (Vocab.unk_id, Vocab.eos_id))
    state = model.initial_state(1)
    for lo in range(0, len(inputs), window):
        top, after, cache = model.hidden(inputs[lo : lo + window, None], state, keep_cache=True)
        here = starts[(starts >= lo) & (starts < lo + window)]
        if here.size:
            rows = here - lo
            steps = model.step_states(cache)  # per layer (T, 1, H): the state after each step
            st = [tuple(a[rows, 0] for a in layer) for layer in steps]
            lp = log_probs64(model, top[:, 0])  # (T, V)
            yield (
                int(np.searchsorted(starts, here[0])),
                st,
                lp[rows],
                _floors(lp, units[lo : lo + len(lp)], rows, special[lo:], pieces),
            )
        state = after


def _floors(lp: np.ndarray, units: np.ndarray, rows: np.ndarray, special: np.ndarray, pieces: Pieces) -> np.ndarray:
    """Each word's log-probability (the definition above) from a block's log-probabilities (T, V),
    less 1e-3 (a word as probable, up to float32 rounding, is still found: ties are the search's to order);
    -inf for the last word when its boundary is not in the block."""
    T = len(lp)
    unit_lp = lp[np.arange(T), units]  # (T,)
    lb = log_begin(lp, pieces.begins)  # (T,)
    ends = np.append(rows[1:], T)  # each word's units run to the next start
    out = np.add.reduceat(unit_lp, rows) - lb[rows]
    tail = ends < T
    plain = ~special[rows]
    out[tail & plain] += lb[ends[tail & plain]]
    out[~tail & plain] = -np.inf  # the boundary lies in the next block: no floor
    return out - 1e-3  # the search ranks in the model's float32: a word within it of the floor is still found


def keystrokes(
    model: RNNModel,
    pieces: Pieces,
    tokens: Sequence[str],
    units: np.ndarray,
    suggestions: int = 3,
    progress=None,
    width: int = DEFAULT_WIDTH,
) -> dict:
    """The keystroke saving rate of a word-piece model, as complete.keystroke_savings defines it for a
    word model: before each letter the ``suggestions`` words that word completion offers for the
    letters typed so far are shown, and a shown word costs one keystroke.  Any word can be shown."""
    letters = keystrokes_total = words = 0
    for first, st, lp0, _ in _word_starts(model, pieces, units):
        shown = search(model, pieces, st, lp0, suggestions, width=width)  # before any letter is typed
        for i, offered in enumerate(shown):
            word = tokens[first + i]
            if word == EOS:
                continue
            letters += len(word)
            words += 1
            keystrokes_total += _cost(model, pieces, _take(st, np.array([i])), lp0[i], word, offered, suggestions)
        if progress is not None:
            progress(first + len(shown), len(tokens))
    from .complete import keystroke_record

    return keystroke_record(suggestions, words, letters, keystrokes_total)


def _cost(model, pieces, state, lp0, word: str, offered, suggestions: int) -> int:
    """Keystrokes to enter ``word``: the letters typed until it is shown, plus one to pick it."""
    if word in (w for w, _ in offered):
        return 1
    for j in range(1, len(word)):  # at j = len(word) a pick would cost more than the last letter
        found, _ = complete(model, pieces, state, lp0[None, :], [word[:j]], suggestions)[0]
        if word in (w for w, _ in found):
            return j + 1
    return len(word)


def word_log_probs(model: RNNModel, pieces: Pieces, words: Sequence[str]) -> np.ndarray:
    """Each word's log-probability given the words before it, read after <eos> from a zero state:
    (len(words),) float64, by the definition above (first unit given that a word begins, times the
    boundary after the word; <eos> and <unk> need none)."""
    if not len(words):
        return np.zeros(0)
    units, starts = pieces.encode(words)
    inputs = np.concatenate([[Vocab.eos_id], units]).astype(np.int32)  # the last unit is read too
    top, _, _ = model.hidden(inputs[:, None], model.initial_state(1))  # (N+1, 1, H)
    lp = log_probs64(model, top[:, 0])  # (N+1, V): row t predicts units[t]; row N what follows
    unit_lp = lp[np.arange(len(units)), units]
    begin = log_begin(lp[np.append(starts, len(units))], pieces.begins)  # at each word's start, and at the end
    out = np.add.reduceat(unit_lp, starts) - begin[:-1]
    plain = np.array([w not in (EOS, pieces.vocab.itos[Vocab.unk_id]) for w in words])
    out[plain] += begin[1:][plain]  # the boundary after the word
    return out
