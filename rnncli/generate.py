"""Using a trained model on prompts: next-word top-k, sampling, beam search, scoring lines.

Pure library (no click, no I/O).  Every function takes token-id sequences and
runs them through the network as minibatches (``run_rows``): many prompts are
sorted by length and read as one batch, a row leaving the batch when its ids
end (no padding is ever read), and the batch goes through time in windows of
at most ``block_rows`` row-steps, the state carried from one window to the
next.  So one network call holds a fixed amount of memory (``WORK_FLOATS``),
whatever the length of the prompts, their number or the candidates scored:
memory grows with the model, not with the input.

Probabilities come from ``model.log_probs`` (normalised over the whole
vocabulary, so top-k is exact) and are handled in float64.  Sampling draws
with the inverse CDF from ``numpy.random.Generator`` uniforms, one generator
per prompt derived from ``(seed, prompt index)``, so a seed gives the same
text whatever the batching and on any machine whose float32 forward pass
agrees to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .model import RNNModel, State

#: prompts read as one batch (a cap on rows, for throughput); memory is bounded by ``block_rows``,
#: the one budget, which every network call also respects
BATCH = 2048
#: floats that one network call may hold: a block of (rows, V) output scores, or the activations of
#: a block of (steps x rows) inputs; about 64 MB in float32.  Thousands of rows per call keep the
#: matrix products efficient, and no prompt length, prompt count or candidate count takes the peak
#: memory past it (tests/test_memory.py)
WORK_FLOATS = 16_000_000


# ------------------------------------------------------- bounded passes
def block_rows(model: RNNModel) -> int:
    """Row-steps (time steps x rows) per network call that keep the call within ``WORK_FLOATS``:
    each row-step holds a row of output scores (V floats) or its activations (the embedding, and
    per layer the gates, the output and the cell's cache)."""
    s = model.shape
    per_row = max(s.vocab_size, s.embedding_size + s.layers * (model.kind.gates + 2) * s.hidden_size)
    return max(1, WORK_FLOATS // per_row)


@dataclass(eq=False)  # arrays: no field-wise ==
class Pass:
    """What ``run_rows`` returns, one entry per row: ``state`` and ``top`` (R, H) after its last id
    (None unless kept), ``totals`` (R,) float64 the summed log-probability of its scored ids, and
    ``scores`` (float64, aligned with ``flat``: the log-probability of each id scored, at the id's
    own place; None unless asked)."""

    state: State | None
    top: np.ndarray | None
    totals: np.ndarray
    scores: np.ndarray | None


def _take_state(state: State, rows: np.ndarray) -> State:
    return [tuple(a[rows] for a in layer) for layer in state]


@dataclass(eq=False)  # arrays: no field-wise ==
class _Rows:
    """``run_rows``' inputs as arrays: ``flat`` (n + 1,) int32 ending in a pad id, so that every index
    ``run_rows`` makes is valid; ``starts``, ``lengths``, ``start_of`` (R,) int64 (``start_of[r]``: the
    row of the start state); ``first`` (R,) int32; ``scored`` (R,) int64 or None."""

    flat: np.ndarray
    n: int  # len(flat) without the pad
    starts: np.ndarray
    first: np.ndarray
    lengths: np.ndarray
    scored: np.ndarray | None
    start_of: np.ndarray


def run_rows(
    model: RNNModel,
    flat: np.ndarray,
    starts: np.ndarray,
    first: np.ndarray,
    lengths: np.ndarray,
    state: State | None = None,
    *,
    state_rows: np.ndarray | None = None,
    scored: np.ndarray | None = None,
    positions: bool = False,
    keep: bool = True,
    max_rows: int = 0,
) -> Pass:
    """Run R rows of ids through the network in bounded memory, each from its own start state.

    Row r reads ``lengths[r]`` ids: ``first[r]``, then ``flat[starts[r]:]`` (so the id read at step
    t >= 1 is ``flat[starts[r] + t - 1]``), from row ``state_rows[r]`` (default r) of ``state``
    (zeros when None).  With ``scored`` it scores the id after each of its first ``scored[r]``
    steps, ``flat[starts[r] + t]`` (a row that reads ``<eos> s`` scores ``s``).  Rows may share
    their ids (``starts``) and their start state (``state_rows``), so R candidates need R numbers,
    not R copies; ``keep=False`` drops the (R, H) states at the end too.

    Rows are sorted by length and taken ``max_rows`` (at most ``block_rows``) at a time; a row leaves
    its batch when its ids end, and the batch goes through time in windows of ``block_rows // B``
    steps, so no call holds more than ``block_rows`` row-steps.  A row's sum is added step by step
    in time order, the same however the steps are windowed.
    """
    R, H, n = len(first), model.shape.hidden_size, len(flat)
    pad = np.zeros(1, dtype=np.int32)
    flat = np.concatenate([np.asarray(flat, dtype=np.int32), pad])  # (n + 1,) a pad: every index below is valid
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    first = np.asarray(first, dtype=np.int32)
    scored = None if scored is None else np.asarray(scored, dtype=np.int64)
    start_of = np.arange(R) if state_rows is None else np.asarray(state_rows, dtype=np.int64)  # (R,)
    rows_in = _Rows(flat, n, starts, first, lengths, scored, start_of)
    budget = block_rows(model)
    group = min(budget, max_rows) if max_rows > 0 else budget
    top_out = np.zeros((R, H), dtype=model.dtype) if keep else None  # (R, H)
    state_out = None
    if keep:  # a row that reads nothing keeps its start state
        state_out = model.initial_state(R) if state is None else _take_state(state, start_of)
    # filled in group by group; ``scores`` (n + 1,) float64 has a slot for the pad, cut off at the end
    out = Pass(state_out, top_out, np.zeros(R), np.zeros(n + 1) if positions else None)
    order = np.argsort(lengths, kind="stable")
    for lo in range(0, R, group):
        _run_group(model, rows_in, order[lo : lo + group], state, budget, out)  # ascending length
    return Pass(out.state, out.top, out.totals, None if out.scores is None else out.scores[:n])


def _run_group(model: RNNModel, rows_in: _Rows, rows: np.ndarray, state: State | None, budget: int, out: Pass) -> None:
    """Run one group of ``rows`` (sorted by ascending length) to their ends, in windows of at most
    ``budget`` row-steps, adding their scores into ``out`` and, when ``out`` keeps them, their last
    state and top output as each row's ids end."""
    lens = rows_in.lengths[rows]
    at = int(np.searchsorted(lens, 0, side="right"))  # rows[at:] still reading (length 0: nothing to read)
    live = model.initial_state(len(rows) - at) if state is None else _take_state(state, rows_in.start_of[rows[at:]])
    t = 0
    while at < len(rows):
        act = rows[at:]
        B = len(act)
        end = min(int(lens[at]), t + max(1, budget // B))  # no row ends inside the window
        steps = np.arange(t, end)[:, None]  # (Tw, 1)
        src = rows_in.starts[act][None, :] + steps - 1  # (Tw, B) where in flat the id read at each step is
        x = rows_in.flat[np.maximum(src, 0)]  # (Tw, B)
        if t == 0:
            x[0] = rows_in.first[act]
        top, live, _ = model.hidden(x, live)  # (Tw, B, H)
        if rows_in.scored is not None:
            _score_window(model, rows_in, act, top, steps, src, out)
        t = end
        done = int(np.searchsorted(lens, t, side="right")) - at  # rows whose ids end here
        if done:
            if out.top is not None:
                _keep_ended(out, act[:done], top[-1, :done], live)
            live = [tuple(a[done:] for a in layer) for layer in live]
            at += done


def _score_window(
    model: RNNModel, rows_in: _Rows, act: np.ndarray, top: np.ndarray, steps: np.ndarray, src: np.ndarray, out: Pass
) -> None:
    """Add the log-probability of the id after each scored step of one window to ``out.totals`` (and
    put it at the id's place in ``out.scores`` when kept): ``act`` (B,) the rows read, ``top``
    (Tw, B, H) their outputs, ``steps`` (Tw, 1) the window's steps, ``src`` (Tw, B) where in flat
    the id read at each step is."""
    valid = steps < rows_in.scored[act][None, :]  # (Tw, B) the steps whose next id is scored
    lp = np.zeros(valid.shape)  # (Tw, B) float64
    if valid.any():
        y = rows_in.flat[np.minimum(src + 1, rows_in.n)]  # (Tw, B) the id after each step
        lp[valid] = model.target_log_probs(np.ascontiguousarray(top[valid]), y[valid])
        if out.scores is not None:
            out.scores[(src + 1)[valid]] = lp[valid]
    for lp_t in lp:  # in time order: one sum per row, however the steps are windowed
        out.totals[act] += lp_t


def _keep_ended(out: Pass, ended: np.ndarray, top_last: np.ndarray, live: State) -> None:
    """Store the rows ``ended`` (D,), the first D live rows, which read their last id in this window:
    ``top_last`` (D, H) their top output, and their state (the first D rows of ``live``)."""
    done = len(ended)
    out.top[ended] = top_last
    for k, layer in enumerate(live):
        for j, a in enumerate(layer):
            out.state[k][j][ended] = a[:done]


def read_contexts(
    model: RNNModel, contexts: Sequence[np.ndarray], state: State | None = None, max_rows: int = 0
) -> tuple[State, np.ndarray]:
    """The state after each context and the top layer's output at its last id: list of (T_i,) ->
    (state of n rows, (n, H)), in bounded memory (``run_rows``).  Every context needs an id."""
    lengths = np.fromiter((len(c) for c in contexts), dtype=np.int64, count=len(contexts))  # (n,)
    if np.any(lengths == 0):
        raise ValueError("every sequence needs at least one id (prompts start with <eos>)")
    if not len(contexts):
        return model.initial_state(0), np.zeros((0, model.shape.hidden_size), dtype=model.dtype)
    T, n = int(lengths[0]), len(contexts)
    if (lengths == T).all() and T * n <= block_rows(model) and (max_rows <= 0 or n <= max_rows):
        # one block of equal lengths (a single prompt, above all): one call, without run_rows' bookkeeping
        ids = np.stack([np.asarray(c, dtype=np.int32) for c in contexts], axis=1)  # (T, n)
        top, new_state, _ = model.hidden(ids, model.initial_state(n) if state is None else state)  # (T, n, H)
        return new_state, top[-1]
    flat = np.concatenate([np.asarray(c, dtype=np.int32) for c in contexts])  # (sum T_i,)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (n,)
    p = run_rows(model, flat, offsets + 1, flat[offsets], lengths, state, max_rows=max_rows)
    return p.state, p.top


# ---------------------------------------------------------------- next word
def last_hidden(model: RNNModel, contexts: Sequence[np.ndarray], batch: int = BATCH) -> np.ndarray:
    """Top-layer hidden state after the last id of each context: list of (T_i,) -> (n, H)."""
    return read_contexts(model, contexts, max_rows=batch)[1]


def next_log_probs(
    model: RNNModel, contexts: Sequence[np.ndarray], batch: int = BATCH, dtype: type = np.float64
) -> np.ndarray:
    """Log-probability of every next word after each context: list of (T_i,) -> (n, V) float64.

    ``dtype=np.float32`` keeps the model's own precision (enough to rank words).
    """
    h = last_hidden(model, contexts, batch)  # (n, H)
    out = np.empty((len(contexts), model.shape.vocab_size), dtype=dtype)  # (n, V)
    step = min(batch, block_rows(model))  # (step, V) scores a call: within the working budget
    for lo in range(0, len(h), step):
        out[lo : lo + step] = model.log_probs(h[lo : lo + step])
    return out


def next_word_probs(model: RNNModel, sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Next-token distribution after each id sequence: list of (T_i,) -> (n, V) float64."""
    return np.exp(next_log_probs(model, sequences))


def mask_out_(scores: np.ndarray, exclude: Sequence[int]) -> np.ndarray:
    """Give the ids in ``exclude`` (``<unk>``, ``<eos>``: never proposed) the score -inf in every row of
    (n, V) ``scores``, in place; returns ``scores``."""
    if len(exclude):
        scores[:, list(exclude)] = -np.inf
    return scores


def top_k_rows(
    log_probs: np.ndarray, k: int, exclude: Sequence[int] = (), min_prob: float = 0.0
) -> list[list[tuple[int, float]]]:
    """The k most probable ids of each row of (n, V) log-probabilities, best first.

    Ties go to the lower id.  Ids in ``exclude`` are skipped; words below
    ``min_prob`` are dropped, so a row may hold fewer than k.
    """
    n, V = log_probs.shape
    k = min(k, V - len(set(exclude)))
    if k <= 0 or n == 0:
        return [[] for _ in range(n)]
    scores = mask_out_(log_probs.copy(), exclude)  # (n, V)
    if k <= 16:
        # k passes of argmax (first maximum: ties go to the lower id) beat a partition of every row
        rows_ = np.arange(n)
        idx = np.empty((n, k), dtype=np.int64)  # (n, k)
        vals = np.empty((n, k), dtype=np.float64)  # (n, k)
        for j in range(k):
            best = scores.argmax(axis=1)  # (n,)
            idx[:, j] = best
            vals[:, j] = scores[rows_, best]
            scores[rows_, best] = -np.inf
        probs = np.exp(vals)
    else:
        # a few more than k, so that ties at the k-th place are broken by id below
        kk = min(V, k + 8)
        idx = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < V else np.tile(np.arange(V), (n, 1))
        vals = np.take_along_axis(scores, idx, axis=1)  # (n, kk)
        order = np.lexsort((idx, -vals), axis=-1)[:, :k]  # by log-prob, ties by id
        idx = np.take_along_axis(idx, order, axis=1)  # (n, k)
        probs = np.exp(np.take_along_axis(vals, order, axis=1).astype(np.float64))  # (n, k)
    rows = []
    for ids_row, p_row in zip(idx.tolist(), probs.tolist()):
        pairs = list(zip(ids_row, p_row))
        if min_prob > 0:
            pairs = [(i, p) for i, p in pairs if p >= min_prob]
        rows.append(pairs)
    return rows


def top_k(probs: np.ndarray, k: int, exclude: tuple[int, ...] = ()) -> list[tuple[int, float]]:
    """The k most probable ids of one (V,) distribution, best first, skipping ``exclude``."""
    with np.errstate(divide="ignore"):
        return [(i, float(p)) for i, p in top_k_rows(np.log(probs)[None, :], k, exclude)[0]]


# ----------------------------------------------------------------- sampling
def filter_distribution(
    log_probs: np.ndarray,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    exclude: Sequence[int] = (),
) -> np.ndarray:
    """The distribution that sampling draws from, per row: (B, V) log-probs -> (B, V) probs, float64.

    In this order: ``exclude`` ids get probability 0; the temperature divides
    the log-probabilities (0 puts all the mass on the most probable word, the
    lowest id on a tie); ``top_k`` > 0 keeps the k most probable words (all
    words tied with the k-th); ``top_p`` < 1 keeps the smallest set of most
    probable words whose mass reaches ``top_p`` (nucleus).  Rows sum to 1.
    """
    logp = mask_out_(np.array(log_probs, dtype=np.float64, ndmin=2), exclude)  # (B, V) a copy
    B, V = logp.shape
    if temperature <= 0:
        p = np.zeros_like(logp)
        p[np.arange(B), np.argmax(logp, axis=1)] = 1.0
        return p
    # shift first, then divide: the best word is at 0 and stays there however small the temperature
    # (dividing first overflows to -inf everywhere for T ~ 1e-310, and -inf - -inf is NaN)
    logp -= logp.max(axis=1, keepdims=True)
    with np.errstate(over="ignore"):
        logp /= temperature
    p = np.exp(logp)  # (B, V)
    p /= p.sum(axis=1, keepdims=True)
    if 0 < top_k < V:
        kth = -np.partition(-p, top_k - 1, axis=1)[:, top_k - 1 : top_k]  # (B, 1) k-th largest
        p[p < kth] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-p, axis=1, kind="stable")  # (B, V) most probable first, ties by id
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the words ranked above
        keep_sorted = before < top_p * (1.0 - 1e-12)  # the rank where the mass reaches p is the last kept
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        p[~keep] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    return p


def draw(probs: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """One id per row of (B, V) probabilities, by inverse CDF with one uniform from each row's generator."""
    cdf = np.cumsum(probs, axis=1)  # (B, V) sequential sums: the same on every machine
    u = np.array([rng.random() for rng in rngs]) * cdf[:, -1]  # (B,) in [0, total)
    ids = (cdf <= u[:, None]).sum(axis=1)  # first index whose cdf exceeds u
    return np.minimum(ids, probs.shape[1] - 1)


def prompt_rngs(seed: int | None, first: int, count: int) -> list[np.random.Generator]:
    """One generator per prompt, from (seed, prompt index): batching never changes a prompt's draws."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (1 << 63))
    return [np.random.default_rng([seed, i]) for i in range(first, first + count)]


def generate(
    model: RNNModel,
    contexts: Sequence[np.ndarray],
    n: int,
    rngs: Sequence[np.random.Generator],
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    exclude: Sequence[int] = (),
    stop_id: int | None = None,
) -> list[tuple[list[int], float]]:
    """Continue each context by up to n sampled ids: returns (ids, log-probability) per context.

    Contexts of equal length run as one batch, feeding each drawn id back in.
    With ``stop_id`` a continuation ends right after drawing it.  The
    log-probability is the model's own (before temperature and filtering).
    """
    results: list[tuple[list[int], float]] = [([], 0.0) for _ in contexts]
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(contexts):
        by_len.setdefault(len(c), []).append(i)
    for idx in by_len.values():
        state, h = read_contexts(model, [contexts[i] for i in idx])  # (B, H) after each context
        live = np.arange(len(idx))  # rows of idx still generating
        outs: list[list[int]] = [[] for _ in idx]
        scores = np.zeros(len(idx))
        for _ in range(n):
            logp = model.log_probs(h).astype(np.float64)  # (b, V)
            p = filter_distribution(logp, temperature=temperature, top_k=top_k, top_p=top_p, exclude=exclude)
            nxt = draw(p, [rngs[idx[r]] for r in live]) if temperature > 0 else np.argmax(p, axis=1)
            scores[live] += logp[np.arange(len(live)), nxt]
            for r, t in zip(live.tolist(), nxt.tolist()):
                outs[r].append(t)
            going = nxt != stop_id if stop_id is not None else np.ones(len(live), dtype=bool)
            if not going.all():
                live, nxt = live[going], nxt[going]
                state = _take_state(state, np.flatnonzero(going))
                if len(live) == 0:
                    break
            top, state, _ = model.hidden(nxt[None, :].astype(np.int32), state)
            h = top[-1]
        for r, i in enumerate(idx):
            results[i] = (outs[r], float(scores[r]))
    return results


def greedy(
    model: RNNModel, context: np.ndarray, n: int, *, exclude: Sequence[int] = (), stop_id: int | None = None
) -> tuple[list[int], float]:
    """The most probable word at every step (ties to the lower id): (ids, log-probability)."""
    return generate(model, [context], n, [], temperature=0.0, exclude=exclude, stop_id=stop_id)[0]


def sample_continuation(
    model: RNNModel,
    context: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    temperature: float = 1.0,
    exclude: tuple[int, ...] = (),
    stop_id: int | None = None,
) -> list[int]:
    """Sample n ids after one ``context`` (T,) (temperature 0 is greedy)."""
    return generate(model, [context], n, [rng], temperature=temperature, exclude=exclude, stop_id=stop_id)[0][0]


# -------------------------------------------------------------- beam search
def beam_search(
    model: RNNModel,
    context: np.ndarray,
    n: int,
    width: int,
    *,
    exclude: Sequence[int] = (),
    stop_id: int | None = None,
) -> list[tuple[list[int], float]]:
    """The ``width`` most probable continuations of up to n ids that the search finds, best first.

    Each step extends every live hypothesis by every word as one (W, V)
    batch and keeps the W best by summed log-probability (ties: earlier
    hypothesis, then lower id), so W=1 is greedy decoding.  With ``stop_id``
    a hypothesis that draws it is finished; the search ends when no live one
    can still beat the W best finished.  Beam search is not exact, and a wide
    beam can lose the greedy path; the greedy continuation is therefore kept
    among the results when it scores better than one of them, so the best
    result never scores worse than greedy decoding.
    """
    V = model.shape.vocab_size
    state, h = read_contexts(model, [np.asarray(context, dtype=np.int32)])  # (1, H)
    live: list[list[int]] = [[]]
    scores = np.zeros(1)  # (b,) summed log-prob of each live hypothesis
    finished: list[tuple[list[int], float]] = []
    for _ in range(n):
        logp = model.log_probs(h).astype(np.float64)  # (b, V)
        mask_out_(logp, exclude)
        cand = (scores[:, None] + logp).ravel()  # (b*V,)
        best = _ranked_candidates(cand, width)
        if best is None:
            break
        parents, tokens, new_scores = _extend_beam(best, cand, V, width, live, stop_id, finished)
        finished.sort(key=lambda r: -r[1])
        finished = finished[:width]
        if not parents or (len(finished) == width and new_scores[0] <= finished[-1][1]):
            live = []
            break
        live = [live[b] + [t] for b, t in zip(parents, tokens)]
        scores = np.array(new_scores)
        rows = np.array(parents)
        state = _take_state(state, rows)
        top, state, _ = model.hidden(np.array([tokens], dtype=np.int32), state)
        h = top[-1]
    results = finished + [(seq, float(s)) for seq, s in zip(live, scores.tolist())]
    g = greedy(model, context, n, exclude=exclude, stop_id=stop_id)
    if all(seq != g[0] for seq, _ in results):
        results.append(g)
    results.sort(key=lambda r: -r[1])  # stable: the search's own order on ties
    return results[:width]


def _ranked_candidates(cand: np.ndarray, width: int) -> np.ndarray | None:
    """The 2W best finite entries of (b*V,) ``cand``, best first, ties by index (hypothesis, then id);
    None when no entry is finite.  Twice the width, so that W remain when some of them finish."""
    m = min(2 * width, int(np.isfinite(cand).sum()))
    if m == 0:
        return None
    best = np.argpartition(-cand, m - 1)[:m] if m < cand.size else np.arange(cand.size)
    return best[np.lexsort((best, -cand[best]))]  # by score, ties by (hypothesis, id)


def _extend_beam(
    best: np.ndarray,
    cand: np.ndarray,
    V: int,
    width: int,
    live: list[list[int]],
    stop_id: int | None,
    finished: list[tuple[list[int], float]],
) -> tuple[list[int], list[int], list[float]]:
    """Walk the ranked candidates ``best`` (indices into (b*V,) ``cand``): one that draws ``stop_id``
    within the first ``width`` ranks is appended to ``finished``; the others, up to ``width`` of them,
    are the next beam, returned as (parent hypothesis, id, summed log-probability) lists."""
    parents, tokens, new_scores = [], [], []
    for rank, c in enumerate(best.tolist()):
        b, t = divmod(c, V)
        if stop_id is not None and t == stop_id:
            if rank < width:
                finished.append((live[b] + [t], float(cand[c])))
            continue
        parents.append(b)
        tokens.append(t)
        new_scores.append(float(cand[c]))
        if len(parents) == width:
            break
    return parents, tokens, new_scores


# ------------------------------------------------------------------ scoring
def score_sequences(
    model: RNNModel, sequences: Sequence[np.ndarray], start_id: int, batch: int = 512
) -> list[np.ndarray]:
    """Log-probability of each id of each sequence given the ids before it: list of (T_i,) -> list of (T_i,).

    Each sequence is read after ``start_id`` (normally ``<eos>``: the start of
    a sentence), from a zero state.  Empty sequences get an empty array.
    """
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))  # (n,)
    if not len(sequences):
        return []
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in sequences])  # (sum T_i,)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (n,)
    first = np.full(len(sequences), start_id, dtype=np.int32)  # each read after start_id, scoring its ids
    p = run_rows(model, flat, offsets, first, lengths, scored=lengths, positions=True, max_rows=batch)
    return [p.scores[o : o + t].copy() for o, t in zip(offsets.tolist(), lengths.tolist())]
