"""Using a trained model on prompts: next-word top-k, sampling, beam search, scoring lines.

Pure library (no click, no I/O).  Every function takes token-id sequences and
runs them through the network as minibatches: many prompts become one
``(T, B)`` batch, right-padded, sorted by length so that padding stays small.
Right padding is exact for a left-to-right network: the hidden state at a
prompt's last real token never sees the padding after it.

Probabilities come from ``model.log_probs`` (normalised over the whole
vocabulary, so top-k is exact) and are handled in float64.  Sampling draws
with the inverse CDF from ``numpy.random.Generator`` uniforms, one generator
per prompt derived from ``(seed, prompt index)``, so a seed gives the same
text whatever the batching and on any machine whose float32 forward pass
agrees to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .model import RNNModel, State

#: prompts per network batch; big enough for throughput, small enough for memory (B x V floats)
BATCH = 2048


# ---------------------------------------------------------------- next word
def _padded_chunks(seqs: Sequence[np.ndarray], batch: int):
    """Yield (indices, ids (T, B) right-padded with 0, lengths (B,)) in length order."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    if np.any(lengths == 0):
        raise ValueError("every sequence needs at least one id (prompts start with <eos>)")
    order = np.argsort(lengths, kind="stable")
    for lo in range(0, len(order), batch):
        idx = order[lo : lo + batch]
        lens = lengths[idx]
        ids = np.zeros((int(lens[-1]), len(idx)), dtype=np.int32)  # (T, B)
        for col, i in enumerate(idx.tolist()):
            ids[: lens[col], col] = seqs[i]
        yield idx, ids, lens


def last_hidden(model: RNNModel, contexts: Sequence[np.ndarray], batch: int = BATCH) -> np.ndarray:
    """Top-layer hidden state after the last id of each context: list of (T_i,) -> (n, H)."""
    out = np.empty((len(contexts), model.shape.hidden_size), dtype=model.dtype)  # (n, H)
    for idx, ids, lens in _padded_chunks(contexts, batch):
        top, _, _ = model.hidden(ids, model.initial_state(ids.shape[1]))  # (T, B, H)
        out[idx] = top[lens - 1, np.arange(len(idx))]  # (B, H) at each prompt's own end
    return out


def next_log_probs(
    model: RNNModel, contexts: Sequence[np.ndarray], batch: int = BATCH, dtype: type = np.float64
) -> np.ndarray:
    """Log-probability of every next word after each context: list of (T_i,) -> (n, V) float64.

    ``dtype=np.float32`` keeps the model's own precision (enough to rank words).
    """
    h = last_hidden(model, contexts, batch)  # (n, H)
    out = np.empty((len(contexts), model.shape.vocab_size), dtype=dtype)  # (n, V)
    for lo in range(0, len(h), batch):
        out[lo : lo + batch] = model.log_probs(h[lo : lo + batch])
    return out


def next_word_probs(model: RNNModel, sequences: Sequence[np.ndarray]) -> np.ndarray:
    """Next-token distribution after each id sequence: list of (T_i,) -> (n, V) float64."""
    return np.exp(next_log_probs(model, sequences))


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
    scores = log_probs.copy()  # (n, V)
    if exclude:
        scores[:, list(exclude)] = -np.inf
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
    logp = np.array(log_probs, dtype=np.float64, ndmin=2)  # (B, V) a copy
    B, V = logp.shape
    if exclude:
        logp[:, list(exclude)] = -np.inf
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


def _take_state(state: State, rows: np.ndarray) -> State:
    return [tuple(a[rows] for a in layer) for layer in state]


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
        ids = np.stack([contexts[i] for i in idx], axis=1)  # (T, B)
        top, state, _ = model.hidden(ids, model.initial_state(len(idx)))
        h = top[-1]  # (B, H)
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
    top, state, _ = model.hidden(np.asarray(context, dtype=np.int32)[:, None], model.initial_state(1))
    h = top[-1]  # (1, H)
    live: list[list[int]] = [[]]
    scores = np.zeros(1)  # (b,) summed log-prob of each live hypothesis
    finished: list[tuple[list[int], float]] = []
    for _ in range(n):
        logp = model.log_probs(h).astype(np.float64)  # (b, V)
        if exclude:
            logp[:, list(exclude)] = -np.inf
        cand = (scores[:, None] + logp).ravel()  # (b*V,)
        m = min(2 * width, int(np.isfinite(cand).sum()))
        if m == 0:
            break
        best = np.argpartition(-cand, m - 1)[:m] if m < cand.size else np.arange(cand.size)
        best = best[np.lexsort((best, -cand[best]))]  # by score, ties by (hypothesis, id)
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


# ------------------------------------------------------------------ scoring
def score_sequences(
    model: RNNModel, sequences: Sequence[np.ndarray], start_id: int, batch: int = 512
) -> list[np.ndarray]:
    """Log-probability of each id of each sequence given the ids before it: list of (T_i,) -> list of (T_i,).

    Each sequence is read after ``start_id`` (normally ``<eos>``: the start of
    a sentence), from a zero state.  Empty sequences get an empty array.
    """
    out: list[np.ndarray] = [np.zeros(0) for _ in sequences]
    inputs = [np.concatenate([[start_id], s]).astype(np.int32) for s in sequences]  # targets shifted by one
    for idx, ids, lens in _padded_chunks(inputs, batch):
        steps = lens - 1  # predicted tokens per column
        T, B = ids.shape[0] - 1, ids.shape[1]
        if T == 0:
            continue  # only empty sequences in this chunk
        top, _, _ = model.hidden(ids[:-1], model.initial_state(B))  # (T, B, H)
        valid = np.arange(T)[:, None] < steps[None, :]  # (T, B)
        rows = top[valid]  # (N, H): only real positions, time-major
        targets = ids[1:][valid]  # (N,)
        picked = model.target_log_probs(rows, targets)  # (N,) float64
        full = np.zeros((T, B))
        full[valid] = picked
        for col, i in enumerate(idx.tolist()):
            out[i] = full[: steps[col], col].copy()
    return out
