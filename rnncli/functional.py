"""Stateless numeric building blocks: activations, softmax cross-entropy, dropout.

Every function works on NumPy arrays of any float dtype and keeps that dtype, so
the same code runs in float32 for training and float64 for gradient checks.
Backward functions sit right under the forward they differentiate.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Logistic function, computed as 0.5 * (1 + tanh(x / 2)).

    The tanh form never overflows (exp(-x) does for large negative x) and is a
    single vectorised transcendental, so it is also the fastest form in NumPy.
    """
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of a (N, V) array, numerically stable; overwrites and returns ``logits``."""
    logits -= logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits).sum(axis=1, keepdims=True))  # (N, 1)
    logits -= lse
    return logits


def cross_entropy_(
    logits: np.ndarray, targets: np.ndarray, bias: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Mean cross-entropy of (N, V) logits (+ a (V,) bias) against (N,) integer targets.

    Returns the loss (nats per token), its gradient with respect to the logits,
    ``(softmax(logits) - onehot(targets)) / N``, and with respect to the bias
    (the gradient's column sums; None without a bias).  The bias is added here,
    block by block, rather than in a pass of its own.  The logits array is
    overwritten and reused as the gradient buffer: at a 10,000-word vocabulary
    it is the largest array of the whole step, so one copy fewer matters.

    The rows are processed in blocks small enough to stay in the core's cache
    (each of the five passes then reads cache, not memory), and the blocks are
    shared among threads: NumPy's element-wise loops release the GIL, so this
    uses every core as BLAS does.  Each row's result does not depend on how the
    rows are split among threads, so the output is the same bit for bit whatever
    the number of threads.  (The block size is fixed by ``V``; a row's shift is
    decided per block, so a different block size could change the last bits.)
    """
    n, V = logits.shape
    block = max(1, _BLOCK_ELEMENTS // V)
    starts = range(0, n, block)
    if n * V < _PARALLEL_MIN or len(starts) < 2 or _THREADS < 2:
        parts = [_cross_entropy_rows(logits, targets, bias, lo, min(lo + block, n), n) for lo in starts]
    else:
        per_thread = -(-len(starts) // _THREADS) * block
        jobs = [
            _pool().submit(_cross_entropy_blocks, logits, targets, bias, lo, min(lo + per_thread, n), block, n)
            for lo in range(0, n, per_thread)
        ]
        parts = [part for j in jobs for part in j.result()]
    # one order of summation, however many threads: the result is the same bit for bit
    loss = float(np.sum([p[0] for p in parts])) / n
    dbias = None
    if bias is not None:
        dbias = parts[0][1].copy()
        for p in parts[1:]:
            dbias += p[1]
    return loss, logits, dbias


def _cross_entropy_blocks(logits, targets, bias, lo, hi, block, n) -> list:
    return [_cross_entropy_rows(logits, targets, bias, a, min(a + block, hi), n) for a in range(lo, hi, block)]


def _cross_entropy_rows(logits, targets, bias, lo, hi, n) -> tuple[float, np.ndarray | None]:
    """Rows lo..hi of cross_entropy_, in place; returns their summed loss and bias-gradient part."""
    x = logits[lo:hi]  # (b, V) view
    rows = np.arange(hi - lo)
    t = targets[lo:hi]
    if bias is not None:
        x += bias
    m = x.max(axis=1, keepdims=True)  # (b, 1)
    # softmax does not change when a row is shifted; shift only when exp could overflow (a row's
    # V terms summing past float32's largest number) or underflow a whole row, and save a pass
    # over the block otherwise
    high = _EXP_MAX - math.log(x.shape[1])
    shift = m if (m.max() > high or m.min() < -_EXP_SAFE) else None
    if shift is not None:
        x -= shift
    target_logit = x[rows, t].astype(np.float64)  # (b,)
    np.exp(x, out=x)
    sums = (x @ _ones(x.shape[1], x.dtype))[:, None]  # (b, 1) row sums as a matrix-vector product
    loss = float(np.sum(np.log(sums[:, 0].astype(np.float64)) - target_logit))
    # softmax - onehot, already scaled by 1/N so the caller needs no extra pass
    x *= (1.0 / n) / sums
    x[rows, t] -= 1.0 / n
    return loss, (_ones(x.shape[0], x.dtype) @ x if bias is not None else None)


_EXP_MAX = 87.0  # float32 exp overflows above 88.7: V terms of exp(x) fit while x < 87 - log(V)
_EXP_SAFE = 80.0  # exp(-80) is still a normal float32 (its smallest is exp(-87.3))
_SUM_TINY = float(np.exp(-50.0))  # a row sum below this may be made of subnormal terms: shift it
_ONES: dict = {}


def _ones(size: int, dtype) -> np.ndarray:
    key = (size, np.dtype(dtype))
    if key not in _ONES:
        _ONES[key] = np.ones(size, dtype=dtype)
    return _ONES[key]


def score_targets_(
    logits: np.ndarray, targets: np.ndarray, bias: np.ndarray | None = None, skip: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Log-probability of each target under softmax(logits + bias), and how many words outrank it.

    (N, V), (N,) -> (N,) float64 log-probabilities, (N,) int64 ranks (0 = the
    model's first choice).  Overwrites ``logits``; blocks and threads as in
    ``cross_entropy_``, so evaluation costs one pass over memory, not five.

    Ranks follow the order of ``rnn predict`` (metrics.count_above): more probable words, and as
    probable ones with a lower id, come first; the ties are counted only where the rank could be a
    top-5 hit (RANKED), the only ranks anyone reads.  ``skip`` (``<unk>``, which predict never
    offers) is never counted above a target, and a target that is ``skip`` ranks V (never a hit).
    """
    n, V = logits.shape
    block = max(1, _BLOCK_ELEMENTS // V)
    log_p = np.empty(n, dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    starts = range(0, n, block)

    def run(lo: int, hi: int) -> None:
        ones = _ones(V, logits.dtype)
        scratch = np.empty((block, V), dtype=logits.dtype)  # exp goes here: x stays for a fallback
        flags = np.empty((block, V), dtype=bool)
        for a in range(lo, hi, block):
            b = min(a + block, hi)
            x = logits[a:b]
            if bias is not None:
                x += bias
            target = x[np.arange(b - a), targets[a:b]][:, None]  # (b, 1)
            # the words that outrank the target, counted as 0/1 floats by a matrix-vector product:
            # twice as fast as numpy's integer sum of the flags (exact: counts stay far below 2^24)
            above = scratch[: b - a]
            np.copyto(above, np.greater(x, target, out=flags[: b - a]), casting="unsafe")
            rank[a:b] = above @ ones
            _fix_ranks(x, target, targets[a:b], rank[a:b], skip)
            with np.errstate(over="ignore", under="ignore"):  # caught below, on the sums
                e = np.exp(x, out=scratch[: b - a])
            sums = e @ ones  # (b,)
            shift = 0.0  # no shift: exp of the raw logits fitted
            # rare: logits beyond exp's range, or so low that the terms are subnormal and the sum has
            # few exact bits (a sum >= exp(-50) has its largest term within 50 + log V of normal range)
            if not np.all((sums >= _SUM_TINY) & np.isfinite(sums)):
                shift = x.max(axis=1, keepdims=True)
                sums = np.exp(x - shift, out=e) @ ones
            log_p[a:b] = (target - shift)[:, 0].astype(np.float64) - np.log(sums.astype(np.float64))

    if n * V < _PARALLEL_MIN or len(starts) < 2 or _THREADS < 2:
        run(0, n)
    else:
        per_thread = -(-len(starts) // _THREADS) * block
        for job in [_pool().submit(run, lo, min(lo + per_thread, n)) for lo in range(0, n, per_thread)]:
            job.result()
    return log_p, rank


#: ranks below this get their ties and ``skip`` counted exactly (top-1 and top-5 read them)
RANKED = 5


def _fix_ranks(x: np.ndarray, target: np.ndarray, ids: np.ndarray, rank: np.ndarray, skip: int | None) -> None:
    """Ranks of rows (b,) counted with strict ``>``: add the ties with a lower id and take ``skip``
    out, for the rows that could be a hit (rank below RANKED), in place."""
    if skip is not None:
        rank -= (x[:, skip] > target[:, 0]).astype(rank.dtype)  # first: it may bring a row below RANKED
    rows = np.flatnonzero(rank < RANKED)
    if rows.size:
        xs, t, y = x[rows], target[rows], ids[rows]  # (r, V), (r, 1), (r,)
        tied = (xs == t) & (np.arange(x.shape[1]) < y[:, None])  # (r, V)
        if skip is not None:
            tied[:, skip] = False
        rank[rows] += np.count_nonzero(tied, axis=1)
    if skip is not None:
        rank[ids == skip] = x.shape[1]


def score_log_probs(
    log_probs: np.ndarray, targets: np.ndarray, skip: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """From full log-probabilities (N, V): each target's log-probability (N,) float64 and rank (N,),
    counted as ``score_targets_`` counts them (strict ``>``, then ``_fix_ranks``)."""
    target = log_probs[np.arange(len(targets)), targets]  # (N,)
    rank = (log_probs > target[:, None]).sum(axis=1)  # (N,) int64
    _fix_ranks(log_probs, target[:, None], targets, rank, skip)
    return target.astype(np.float64), rank


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_THREADS = min(4, _available_cores())
_BLOCK_ELEMENTS = 1 << 18  # 1 MB of float32 per block: a core's L2 holds it
_PARALLEL_MIN = 1 << 20  # below this, thread hand-off costs more than it saves


def rows_per_block(V: int) -> int:
    """Rows of a (N, V) array that cross_entropy_ and score_targets_ process as one block."""
    return max(1, _BLOCK_ELEMENTS // V)


_POOL = None
_POOL_LOCK = threading.Lock()  # threads serving one model may ask for the pool at once


def set_threads(n: int) -> None:
    """How many threads the blocked softmax passes use (a data-parallel worker uses its share of the cores)."""
    global _THREADS, _POOL
    if n != _THREADS and _POOL is not None:
        _POOL.shutdown(wait=True)
        _POOL = None
    _THREADS = max(1, int(n))


def _pool():
    global _POOL
    with _POOL_LOCK:  # one pool, not one per thread that found none
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="rnn-softmax")
        return _POOL


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: np.dtype) -> np.ndarray | None:
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p); None when p == 0."""
    if p <= 0.0:
        return None
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))
