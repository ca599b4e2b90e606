"""The fused output-layer kernels against direct NumPy computations."""

import numpy as np
import pytest

from rnncli import functional as F


def _direct(logits, targets, bias):
    z = logits.astype(np.float64) + bias
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    target_z = z[np.arange(len(targets)), targets][:, None]
    return log_p[np.arange(len(targets)), targets], (z > target_z).sum(axis=1)


@pytest.mark.parametrize("n, V", [(7, 13), (300, 5003), (2100, 1000)])  # one block; several; threaded
def test_score_targets_gives_exact_log_probs_and_ranks(n, V):
    rng = np.random.default_rng(n)
    logits = (rng.standard_normal((n, V)) * 3).astype(np.float32)
    logits[:, : V // 3] = np.round(logits[:, : V // 3])  # many ties: a tie does not outrank the target
    targets = rng.integers(0, V, n)
    bias = rng.standard_normal(V).astype(np.float32)
    want_lp, want_rank = _direct(logits, targets, bias)
    got_lp, got_rank = F.score_targets_(logits.copy(), targets, bias)
    np.testing.assert_allclose(got_lp, want_lp, rtol=0, atol=2e-4)
    np.testing.assert_array_equal(got_rank, want_rank)
    assert got_rank.min() >= 0 and got_rank.max() > 0


def test_score_targets_survives_logits_beyond_exp_range():
    logits = np.array([[500.0, 0.0, -3.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    targets = np.array([0, 1])
    log_p, rank = F.score_targets_(logits.copy(), targets)
    want_lp, want_rank = _direct(logits, targets, np.zeros(3))
    np.testing.assert_allclose(log_p, want_lp, atol=1e-5)
    np.testing.assert_array_equal(rank, [0, 1])
    np.testing.assert_array_equal(want_rank, [0, 1])
