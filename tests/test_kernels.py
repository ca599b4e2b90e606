"""The hot-path kernels checked directly: blocked and threaded softmax cross-entropy and scoring, and the optimisers.

The softmax kernels are compared with a float64 log-softmax computed here, with their block size, thread count and
parallel threshold forced small so that a few hundred rows take every path: several blocks, several threads with
uneven shares, and the max-shift for logits beyond exp's float32 range.  The optimisers and clipping are compared
with torch.optim and torch.nn.utils over several steps (those tests run when torch is installed).
"""

import numpy as np
import pytest

from rnncli import functional as F
from rnncli.optim import SGD, Adam, RowGrad, clip_grad_norm_, dense

N, V = 103, 37  # 103 rows: not a multiple of the 8-row block
BLOCK_ROWS = 8  # 13 blocks, the last of 7 rows; 3 threads take 5, 5 and 3 blocks, 2 threads take 7 and 6


def _reference(logits, targets, bias=None):
    """float64 log-softmax of logits (+ bias), shifted by each row's max.

    (N, V), (N,), (V,) -> (N,) mean-loss terms -log p(target), (N, V) gradient (softmax - onehot) / N,
    (V,) its column sums.
    """
    z = logits.astype(np.float64)
    if bias is not None:
        z = z + bias
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, V)
    rows = np.arange(len(targets))
    grad = np.exp(log_p)
    grad[rows, targets] -= 1.0
    grad /= len(targets)
    return -log_p[rows, targets], grad, grad.sum(axis=0)


def _reference_ranks(logits, targets, bias=None, skip=None):
    """How many words come before the target in rnn predict's order, (N,): a larger logit, or the same
    logit and a lower id (counted exactly where the rank is below F.RANKED: top-1 and top-5 read no
    other), ``skip`` never counted and a ``skip`` target ranked V.

    The bias is added in the logits' own dtype, as the kernel adds it: the rank is a count over the logits the
    model computes, and a float64 sum could break or make a tie that the float32 one does not.
    """
    z = logits if bias is None else logits + bias
    t = z[np.arange(len(targets)), targets][:, None]
    above, tied = z > t, (z == t) & (np.arange(z.shape[1]) < targets[:, None])
    if skip is not None:
        above[:, skip] = tied[:, skip] = False
    rank = above.sum(axis=1)
    rank = np.where(rank < F.RANKED, rank + tied.sum(axis=1), rank)
    return np.where(targets == skip, z.shape[1], rank) if skip is not None else rank


def _data(seed, n=N, v=V, scale=3.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, v)) * scale).astype(dtype)  # (n, v)
    targets = rng.integers(0, v, n)  # (n,)
    bias = rng.standard_normal(v).astype(dtype)  # (v,)
    return logits, targets, bias


class _CountingPool:
    """Stands in for the kernels' thread pool and counts the jobs handed to it."""

    def __init__(self, pool):
        self.pool, self.jobs = pool, 0

    def submit(self, *args):
        self.jobs += 1
        return self.pool.submit(*args)


@pytest.fixture
def kernel(monkeypatch):
    """Sets the kernels' block size (in rows of V), thread count and parallel threshold; restores them after.

    Returns a function (block_rows, threads, v=V) -> the counting pool that the threaded path submits its jobs to.
    """
    original, real_pool = F._THREADS, F._pool

    def configure(block_rows, threads, v=V):
        monkeypatch.setattr(F, "_BLOCK_ELEMENTS", block_rows * v)
        monkeypatch.setattr(F, "_PARALLEL_MIN", 0 if threads > 1 else 1 << 62)
        F.set_threads(threads)
        counting = _CountingPool(real_pool())
        monkeypatch.setattr(F, "_pool", lambda: counting)
        return counting

    yield configure
    monkeypatch.undo()  # the real _pool back before set_threads shuts the pool down
    F.set_threads(original)


def _extreme(logits, offset):
    """Rows 0..43 moved by offset (blocks 0-4 wholly, block 5 half), the rest left in exp's range."""
    out = logits.copy()
    out[:44] += np.float32(offset)
    return out


# ---------------------------------------------------------------------------------------------- cross_entropy_


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("with_bias", [False, True])
def test_cross_entropy_over_several_blocks_and_threads_equals_float64_reference(kernel, threads, with_bias):
    pool = kernel(BLOCK_ROWS, threads)
    logits, targets, bias = _data(0)  # (103, 37), (103,), (37,)
    bias = bias if with_bias else None
    want_loss, want_grad, want_dbias = _reference(logits, targets, bias)

    loss, grad, dbias = F.cross_entropy_(logits.copy(), targets, None if bias is None else bias.copy())

    assert pool.jobs == (0 if threads == 1 else threads)  # the threaded path ran, one job per thread
    assert loss == pytest.approx(want_loss.mean(), rel=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-6 / N)
    if bias is None:
        assert dbias is None
    else:
        np.testing.assert_allclose(dbias, want_dbias, rtol=0, atol=1e-6)


@pytest.mark.parametrize("offset", [100.0, -100.0, 500.0])
@pytest.mark.parametrize("threads", [1, 3])
def test_cross_entropy_of_logits_beyond_exp_range_is_finite_and_correct(kernel, offset, threads):
    kernel(BLOCK_ROWS, threads)
    logits, targets, bias = _data(1)
    logits = _extreme(logits, offset)  # (103, 37): float32 exp of the unshifted rows overflows or underflows
    want_loss, want_grad, want_dbias = _reference(logits, targets, bias)

    loss, grad, dbias = F.cross_entropy_(logits.copy(), targets, bias.copy())

    assert np.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(dbias).all()
    # float32 rounds a logit near 500 (plus its bias) to 3e-5, so the softmax is good to a few 1e-6 only
    assert loss == pytest.approx(want_loss.mean(), rel=2e-6)
    np.testing.assert_allclose(grad * N, want_grad * N, rtol=0, atol=2e-5)
    np.testing.assert_allclose(dbias, want_dbias, rtol=0, atol=2e-6)


def test_cross_entropy_is_bitwise_the_same_for_any_thread_count(kernel):
    logits, targets, bias = _data(2)
    logits = _extreme(logits, 100.0)  # (103, 37): shifted blocks and unshifted ones
    results = []
    for threads in [1, 2, 3, 4]:
        kernel(BLOCK_ROWS, threads)
        results.append(F.cross_entropy_(logits.copy(), targets, bias.copy()))
    (loss, grad, dbias), others = results[0], results[1:]
    for threads, (o_loss, o_grad, o_dbias) in zip([2, 3, 4], others):
        assert o_loss == loss, f"{threads} threads"
        np.testing.assert_array_equal(o_grad, grad, err_msg=f"{threads} threads")
        np.testing.assert_array_equal(o_dbias, dbias, err_msg=f"{threads} threads")


@pytest.mark.parametrize("block_rows", [1, 5, 64, 1000])  # one row a block ... one block for all
def test_cross_entropy_does_not_depend_on_the_block_size_beyond_rounding(kernel, block_rows):
    kernel(block_rows, 2)
    logits, targets, bias = _data(3)
    want_loss, want_grad, want_dbias = _reference(logits, targets, bias)
    loss, grad, dbias = F.cross_entropy_(logits.copy(), targets, bias.copy())
    assert loss == pytest.approx(want_loss.mean(), rel=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-6 / N)
    np.testing.assert_allclose(dbias, want_dbias, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_cross_entropy_of_many_logits_just_under_the_shift_threshold_is_finite(kernel):
    kernel(1000, 1, v=8000)
    logits = np.full((2, 8000), 79.9, dtype=np.float32)  # (2, 8000): each exp fits, the row sum does not
    loss, grad, _ = F.cross_entropy_(logits, np.array([0, 1]))
    assert loss == pytest.approx(np.log(8000), rel=1e-5)


def test_cross_entropy_loss_and_gradient_equal_torch(kernel):
    torch = pytest.importorskip("torch")
    kernel(BLOCK_ROWS, 3)
    logits, targets, bias = _data(5)
    logits = _extreme(logits, -100.0)  # (103, 37)
    t_logits = torch.from_numpy(logits.astype(np.float64)).requires_grad_()
    t_bias = torch.from_numpy(bias.astype(np.float64)).requires_grad_()
    t_loss = torch.nn.functional.cross_entropy(t_logits + t_bias, torch.from_numpy(targets))
    t_loss.backward()

    loss, grad, dbias = F.cross_entropy_(logits.copy(), targets, bias.copy())

    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    np.testing.assert_allclose(grad * N, t_logits.grad.numpy() * N, rtol=0, atol=1e-5)
    np.testing.assert_allclose(dbias, t_bias.grad.numpy(), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- score_targets_


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("with_bias", [False, True])
def test_score_targets_over_several_blocks_and_threads_equals_float64_reference(kernel, threads, with_bias):
    pool = kernel(BLOCK_ROWS, threads)
    logits, targets, bias = _data(6)
    logits[:, : V // 2] = np.round(logits[:, : V // 2])  # (103, 37) with ties: a tie does not outrank the target
    bias = bias if with_bias else None
    want_nll, _, _ = _reference(logits, targets, bias)
    want_rank = _reference_ranks(logits, targets, bias)

    log_p, rank = F.score_targets_(logits.copy(), targets, None if bias is None else bias.copy())

    assert pool.jobs == (0 if threads == 1 else threads)
    assert log_p.dtype == np.float64 and rank.dtype == np.int64
    np.testing.assert_allclose(log_p, -want_nll, rtol=0, atol=5e-6)
    np.testing.assert_array_equal(rank, want_rank)
    assert rank.max() > 0


def test_score_targets_ranks_ties_to_the_lower_id_and_never_counts_the_skipped_word():
    logits, targets, _ = _data(7)
    logits[:, : V // 2] = np.round(logits[:, : V // 2])  # many ties among the first half
    targets[:10] = 0  # some targets are the skipped word (<unk>)
    _, rank = F.score_targets_(logits.copy(), targets, None, skip=0)
    np.testing.assert_array_equal(rank, _reference_ranks(logits, targets, skip=0))
    assert (rank[:10] == V).all()
    above = logits[:, 0] > logits[np.arange(len(targets)), targets]
    assert (above & (rank < 5)).any()  # the case that matters: <unk> more probable than a target it does not push out


@pytest.mark.parametrize("threads", [1, 3])
def test_score_targets_of_logits_far_beyond_exp_range_falls_back_to_a_shift(kernel, threads):
    kernel(BLOCK_ROWS, threads)
    logits, targets, bias = _data(7)
    logits[:20] += 1000.0  # (103, 37): blocks 0-1 overflow, block 2 mixed
    logits[50:70] -= 1000.0  # rows of blocks 6-8 underflow to a zero sum
    want_nll, _, _ = _reference(logits, targets, bias)

    log_p, rank = F.score_targets_(logits.copy(), targets, bias.copy())

    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(log_p, -want_nll, rtol=0, atol=1e-4)  # float32 holds 1000 + bias to 6e-5
    np.testing.assert_array_equal(rank, _reference_ranks(logits, targets, bias))


def test_score_targets_of_logits_near_the_float32_underflow_are_accurate(kernel):
    kernel(BLOCK_ROWS, 1)
    logits, targets, _ = _data(8, scale=1.0)
    logits -= 103.0  # (103, 37): every exp lies below float32's smallest normal number, 1.2e-38
    want_nll, _, _ = _reference(logits, targets)
    log_p, _ = F.score_targets_(logits.copy(), targets)
    np.testing.assert_allclose(log_p, -want_nll, rtol=0, atol=1e-4)


def test_score_targets_is_bitwise_the_same_for_any_thread_count(kernel):
    logits, targets, bias = _data(9)
    logits[:10] += 1000.0  # (103, 37): fallback blocks and plain ones
    results = []
    for threads in [1, 2, 3, 4]:
        kernel(BLOCK_ROWS, threads)
        results.append(F.score_targets_(logits.copy(), targets, bias.copy()))
    for threads, (log_p, rank) in zip([2, 3, 4], results[1:]):
        np.testing.assert_array_equal(log_p, results[0][0], err_msg=f"{threads} threads")
        np.testing.assert_array_equal(rank, results[0][1], err_msg=f"{threads} threads")


# ---------------------------------------------------------------------------------------------- optimisers


def _params(seed):
    """float64 parameters: a matrix, a vector and an embedding whose gradient touches a few rows."""
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((6, 4)), "b": rng.standard_normal(4), "emb": rng.standard_normal((10, 3))}


EMB_ROWS = np.array([7, 1, 4])  # distinct, unsorted


def _grads(rng, sparse):
    """A step's gradients; the embedding's as a RowGrad of 3 random rows or the same values as a dense array.

    The rows change from step to step, so Adam's moments must decay in rows a step leaves untouched.
    """
    emb = RowGrad(rng.choice(10, size=3, replace=False), rng.standard_normal((3, 3)), (10, 3))
    return {"w": rng.standard_normal((6, 4)), "b": rng.standard_normal(4), "emb": emb if sparse else emb.dense()}


def _copy(grads):
    return {
        k: RowGrad(g.indices, g.values.copy(), g.shape) if isinstance(g, RowGrad) else g.copy()
        for k, g in grads.items()
    }


def _check_steps_against_torch(ours, make_torch, sparse, steps=5):
    torch = pytest.importorskip("torch")
    params = _params(0)
    arrays = dict(params)  # the same array objects: the step must update them in place
    t_params = {k: torch.tensor(p, requires_grad=True) for k, p in params.items()}
    t_opt = make_torch(torch, list(t_params.values()))
    rng = np.random.default_rng(1)
    for step in range(steps):
        grads = _grads(rng, sparse)
        for k, g in grads.items():
            t_params[k].grad = torch.from_numpy(dense(g).copy())
        t_opt.step()
        ours.step(params, _copy(grads))
        for k, p in arrays.items():
            np.testing.assert_allclose(p, t_params[k].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{k} {step}")


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("sparse", [False, True])
def test_sgd_steps_equal_torch_sgd(weight_decay, sparse):
    _check_steps_against_torch(
        SGD(lr=0.3, weight_decay=weight_decay),
        lambda torch, ps: torch.optim.SGD(ps, lr=0.3, weight_decay=weight_decay),
        sparse,
    )


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("sparse", [False, True])
def test_adam_steps_equal_torch_adam_with_l2_weight_decay(weight_decay, sparse):
    # betas and eps away from the defaults, so that a swapped or hard-coded one shows
    _check_steps_against_torch(
        Adam(lr=0.05, weight_decay=weight_decay, betas=(0.8, 0.95), eps=1e-3),
        lambda torch, ps: torch.optim.Adam(ps, lr=0.05, betas=(0.8, 0.95), eps=1e-3, weight_decay=weight_decay),
        sparse,
    )


def test_sgd_with_a_row_gradient_leaves_the_other_rows_untouched():
    params = _params(2)
    before = params["emb"].copy()  # (10, 3)
    SGD(lr=0.3).step(params, {"emb": RowGrad(EMB_ROWS, np.ones((3, 3)), (10, 3))})
    others = np.setdiff1d(np.arange(10), EMB_ROWS)
    np.testing.assert_array_equal(params["emb"][others], before[others])
    np.testing.assert_allclose(params["emb"][EMB_ROWS], before[EMB_ROWS] - 0.3, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "max_norm, scale, clips",
    [(0.5, 1.0, True), (100.0, 1.0, False), (0.5, 0.25, True), (100.0, 0.25, False), (0.0, 0.25, False)],
)
def test_clip_grad_norm_equals_torch_clip_grad_norm(max_norm, scale, clips):
    torch = pytest.importorskip("torch")
    grads = _grads(np.random.default_rng(3), sparse=True)  # (6, 4), (4,), 3 rows of (10, 3): norm ~ 5
    t_grads = {k: torch.from_numpy(dense(g) * scale) for k, g in grads.items()}  # scale first, then clip
    t_params = {k: torch.zeros_like(g, requires_grad=True) for k, g in t_grads.items()}
    for k, p in t_params.items():
        p.grad = t_grads[k]
    t_total = torch.nn.utils.clip_grad_norm_(list(t_params.values()), max_norm if max_norm > 0 else float("inf"))

    total = clip_grad_norm_(grads, max_norm, scale=scale)

    assert total == pytest.approx(t_total.item(), rel=1e-12)
    assert (max_norm > 0 and total > max_norm) == clips  # each case takes the path it names
    for k, g in grads.items():
        np.testing.assert_allclose(dense(g), t_params[k].grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=k)


# ------------------------------------------------------------------------------------ target log-probabilities


@pytest.mark.parametrize("softmax", ["full", "adaptive"])
def test_target_log_probs_equal_the_full_distribution_at_the_targets(softmax):
    from rnncli.model import ModelShape, RNNModel

    shape = ModelShape(vocab_size=60, cell="lstm", embedding_size=5, hidden_size=8, softmax=softmax, cutoffs=(10, 30))
    model = RNNModel(shape, dtype=np.float64)
    model.init_params(np.random.default_rng(3), 0.5)
    hidden = np.random.default_rng(4).standard_normal((50, 8))  # (50, H)
    targets = np.concatenate([[0, 9, 10, 29, 30, 59], np.random.default_rng(5).integers(0, 60, 44)])  # every cluster
    want = model.log_probs(hidden.copy())[np.arange(50), targets]  # (50,) from the (50, V) distribution
    got = model.target_log_probs(hidden.copy(), targets)
    assert got.dtype == np.float64 and got.shape == (50,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
