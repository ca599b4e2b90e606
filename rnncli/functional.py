"""Stateless numeric building blocks: activations, softmax cross-entropy, dropout.

Every function works on NumPy arrays of any float dtype and keeps that dtype, so
the same code runs in float32 for training and float64 for gradient checks.
Backward functions sit right under the forward they differentiate.
"""

from __future__ import annotations

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
    """Row-wise log-softmax of a (N, V) array, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, V)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def softmax_(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (N, V) array, computed in place; returns the same array."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def cross_entropy_(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of (N, V) logits against (N,) integer targets.

    Returns the loss (nats per token) and its gradient with respect to the
    logits, ``(softmax(logits) - onehot(targets)) / N``.  The logits array is
    overwritten and reused as the gradient buffer: at a 10,000-word vocabulary
    it is the largest array of the whole step, so one copy fewer matters.
    """
    n = logits.shape[0]
    rows = np.arange(n)
    logits -= logits.max(axis=1, keepdims=True)  # (N, V), max is now 0
    target_logit = logits[rows, targets].astype(np.float64)  # (N,)
    np.exp(logits, out=logits)
    sums = logits.sum(axis=1, keepdims=True)  # (N, 1)
    loss = float(np.mean(np.log(sums[:, 0].astype(np.float64)) - target_logit))
    # softmax - onehot, already scaled by 1/N so the caller needs no extra pass
    logits *= (1.0 / n) / sums
    logits[rows, targets] -= 1.0 / n
    return loss, logits


def token_log_probs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Log-probability of each target under softmax(logits): (N, V), (N,) -> (N,) float64."""
    log_probs = log_softmax(logits)
    return log_probs[np.arange(logits.shape[0]), targets].astype(np.float64)


def dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: np.dtype) -> np.ndarray | None:
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p); None when p == 0."""
    if p <= 0.0:
        return None
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))
