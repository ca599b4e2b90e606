"""The figures that describe a model's predictions, each computed in one place.

- ``perplexity``: ``exp`` of the mean negative log-likelihood, for every command that reports one
  (``rnn eval``, ``rnn score``, the training records and summary);
- ``count_above`` and ``ranks``: where a word stands among the model's choices, in the order
  ``rnn predict`` lists them (most probable first, ties to the lower id), for every top-1/top-5
  figure and for the keystroke count of word completion.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_LOSS", "count_above", "perplexity", "ranks", "tied_below"]

#: mean losses (nats per token) at or above this give an infinite perplexity: exp overflows float64 at 709.8
MAX_LOSS = 700.0


def perplexity(nll: float, count: float = 1) -> float | None:
    """``exp(nll / count)``: the perplexity of ``count`` tokens whose negative log-likelihoods (nats)
    sum to ``nll``; ``perplexity(loss)`` for a mean loss.

    None when nothing was scored (``count`` 0); infinite when the mean loss is not below
    ``MAX_LOSS`` (where ``exp`` would overflow) or is NaN.
    """
    if not count:
        return None
    loss = nll / count
    return math.exp(loss) if loss < MAX_LOSS else math.inf


def tied_below(scores: np.ndarray, target_score, target_id, ids: np.ndarray | None = None) -> np.ndarray:
    """How many entries of each row of ``scores`` (..., m) score exactly ``target_score`` (...) and have an
    id below ``target_id`` (...): the ties that the order of ``rnn predict`` puts before the target.
    ``ids`` (m,) are the ids of the columns (0..m-1 when None)."""
    scores = np.asarray(scores)
    cols = np.arange(scores.shape[-1]) if ids is None else np.asarray(ids)
    target_score, target_id = np.asarray(target_score)[..., None], np.asarray(target_id)[..., None]
    return np.count_nonzero((scores == target_score) & (cols < target_id), axis=-1)


def count_above(scores: np.ndarray, target_score, target_id, ids: np.ndarray | None = None) -> np.ndarray:
    """How many entries of each row of ``scores`` (..., m) come before a word of score ``target_score``
    (...) and id ``target_id`` (...) in the order of ``rnn predict`` (``generate.top_k_rows``): those
    that score higher, and those that score the same with a lower id.  ``ids`` (m,) are the ids of
    the columns (0..m-1 when None); the target need not be among them.  0 = the first choice."""
    scores = np.asarray(scores)
    higher = np.count_nonzero(scores > np.asarray(target_score)[..., None], axis=-1)
    return higher + tied_below(scores, target_score, target_id, ids)


def ranks(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The rank of each row's target column among the row's V words: (n, V) scores (log-probabilities
    or logits), (n,) ids -> (n,) int64, 0 = the model's first choice, ties to the lower id."""
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    target_score = scores[np.arange(len(targets)), targets]
    return count_above(scores, target_score, targets).astype(np.int64)
