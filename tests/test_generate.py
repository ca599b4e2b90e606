"""The generation library on tiny hand-built models: top-k, sampling, nucleus, beam search, scoring."""

import math

import numpy as np
import pytest

from rnncli.generate import (
    beam_search,
    filter_distribution,
    generate,
    greedy,
    last_hidden,
    next_log_probs,
    prompt_rngs,
    score_sequences,
    top_k_rows,
)
from rnncli.model import ModelShape, RNNModel

KNOWN = np.array([0.5, 0.25, 0.15, 0.1])  # next-word distribution of the constant model


def constant_model(probs=KNOWN) -> RNNModel:
    """Every weight zero, so h = tanh(0) = 0 and the next word is softmax(decoder.bias) = probs, always."""
    model = RNNModel(ModelShape(vocab_size=len(probs), embedding_size=3, hidden_size=4))
    model.params["decoder.bias"][...] = np.log(probs)
    return model


def random_model(seed: int, cell: str = "rnn", vocab: int = 7, layers: int = 1) -> RNNModel:
    """Context-dependent, peaked enough that beam search and greedy can differ."""
    model = RNNModel(ModelShape(vocab_size=vocab, cell=cell, embedding_size=5, hidden_size=6, layers=layers))
    model.init_params(np.random.default_rng(seed), 1.5)
    return model


def ctx(*ids) -> np.ndarray:
    return np.array(ids, dtype=np.int32)


# ------------------------------------------------------------------ next word
def test_next_log_probs_of_the_constant_model_are_the_known_ones():
    logp = next_log_probs(constant_model(), [ctx(1), ctx(1, 2, 3)])
    np.testing.assert_allclose(np.exp(logp), [KNOWN, KNOWN], rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padded_batch_equals_each_prompt_alone(cell):
    model = random_model(3, cell, layers=2)
    rng = np.random.default_rng(0)
    contexts = [rng.integers(0, 7, size=n).astype(np.int32) for n in (1, 5, 2, 5, 3, 1, 8)]
    batched = last_hidden(model, contexts, batch=3)
    for c, h in zip(contexts, batched):
        top, _, _ = model.hidden(c[:, None], model.initial_state(1))
        np.testing.assert_allclose(h, top[-1, 0], rtol=1e-5, atol=1e-6)


def test_top_k_rows_is_exact_and_breaks_ties_by_id():
    logp = np.log(np.array([[0.1, 0.3, 0.1, 0.3, 0.2], [0.6, 0.1, 0.1, 0.1, 0.1]]))
    rows = top_k_rows(logp, 3)
    assert [i for i, _ in rows[0]] == [1, 3, 4]
    assert [i for i, _ in rows[1]] == [0, 1, 2]
    assert rows[0][0][1] == pytest.approx(0.3)
    assert [i for i, _ in top_k_rows(logp, 2, exclude=(1,))[0]] == [3, 4]
    assert top_k_rows(logp, 5, min_prob=0.15)[1] == [(0, pytest.approx(0.6))]


def test_top_k_rows_matches_a_full_sort_on_a_big_vocabulary():
    rng = np.random.default_rng(1)
    logp = rng.normal(size=(20, 3000))
    for row, got in zip(logp, top_k_rows(logp, 10, exclude=(0, 1))):
        want = [i for i in np.argsort(-row, kind="stable") if i not in (0, 1)][:10]
        assert [i for i, _ in got] == want


# ------------------------------------------------------------------ sampling
def test_sampling_follows_the_known_distribution_chi_square():
    model = constant_model()
    n = 20000
    out = generate(model, [ctx(1)], n, prompt_rngs(123, 0, 1))[0][0]
    counts = np.bincount(out, minlength=4)
    expected = KNOWN * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


def test_sampling_is_reproducible_and_independent_of_batching():
    model = random_model(5)
    contexts = [ctx(1, 2), ctx(1), ctx(1, 2), ctx(3, 4, 5)]
    a = generate(model, contexts, 12, prompt_rngs(42, 0, 4))
    b = generate(model, contexts, 12, prompt_rngs(42, 0, 4))
    assert a == b
    # the third prompt alone, with its own index, draws the same words as inside the batch
    alone = generate(model, [contexts[2]], 12, prompt_rngs(42, 2, 1))
    assert alone[0][0] == a[2][0]
    assert alone[0][1] == pytest.approx(a[2][1], rel=1e-6)
    assert generate(model, contexts, 12, prompt_rngs(43, 0, 4)) != a


def test_temperature_towards_zero_equals_greedy():
    for seed in range(5):
        model = random_model(seed)
        g = greedy(model, ctx(1, 3), 15)
        cold = generate(model, [ctx(1, 3)], 15, prompt_rngs(seed, 0, 1), temperature=1e-6)[0]
        zero = generate(model, [ctx(1, 3)], 15, prompt_rngs(seed, 0, 1), temperature=0.0)[0]
        assert cold[0] == g[0] == zero[0]
        assert g[1] == pytest.approx(zero[1])


def test_greedy_takes_the_most_probable_word():
    ids, logprob = greedy(constant_model(), ctx(1), 3)
    assert ids == [0, 0, 0] and logprob == pytest.approx(3 * math.log(0.5))


@pytest.mark.parametrize(
    "p, kept",
    [
        (0.3, [0]),
        (0.5, [0]),
        (0.6, [0, 1]),
        (0.75, [0, 1]),
        (0.76, [0, 1, 2]),
        (0.95, [0, 1, 2, 3]),
        (1.0, [0, 1, 2, 3]),
    ],
)
def test_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    probs = filter_distribution(np.log(KNOWN)[None, :], top_p=p)[0]
    assert list(np.flatnonzero(probs)) == kept
    np.testing.assert_allclose(probs[kept], KNOWN[kept] / KNOWN[kept].sum())


def test_top_p_sampling_draws_only_from_the_nucleus_in_proportion():
    out = generate(constant_model(), [ctx(1)], 6000, prompt_rngs(7, 0, 1), top_p=0.7)[0][0]
    counts = np.bincount(out, minlength=4)
    assert counts[2] == counts[3] == 0
    assert counts[0] / counts[:2].sum() == pytest.approx(2 / 3, abs=0.03)


def test_top_k_sampling_and_exclude():
    probs = filter_distribution(np.log(KNOWN)[None, :], top_k=2)[0]
    np.testing.assert_allclose(probs, [2 / 3, 1 / 3, 0, 0])
    probs = filter_distribution(np.log(KNOWN)[None, :], exclude=(0,))[0]
    np.testing.assert_allclose(probs, [0, 0.5, 0.3, 0.2])
    out = generate(constant_model(), [ctx(1)], 500, prompt_rngs(1, 0, 1), exclude=(0,))[0][0]
    assert 0 not in out


def test_temperature_sharpens_and_flattens():
    cold = filter_distribution(np.log(KNOWN)[None, :], temperature=0.5)[0]
    hot = filter_distribution(np.log(KNOWN)[None, :], temperature=2.0)[0]
    np.testing.assert_allclose(cold, KNOWN**2 / (KNOWN**2).sum())
    np.testing.assert_allclose(hot, np.sqrt(KNOWN) / np.sqrt(KNOWN).sum())


def test_generation_stops_at_eos():
    model = constant_model(np.array([0.2, 0.6, 0.1, 0.1]))  # id 1 (the <eos> here) is likely
    out = generate(model, [ctx(1)] * 20, 30, prompt_rngs(0, 0, 20), stop_id=1)
    for ids, _ in out:
        assert 1 not in ids[:-1]
        assert ids[-1] == 1 or len(ids) == 30


# --------------------------------------------------------------- beam search
@pytest.mark.parametrize("stop", [None, 2])
def test_beam_of_width_one_is_greedy(stop):
    for seed in range(8):
        model = random_model(seed)
        g = greedy(model, ctx(1, 4), 8, stop_id=stop)
        [(ids, score)] = beam_search(model, ctx(1, 4), 8, 1, stop_id=stop)
        assert ids == g[0] and score == pytest.approx(g[1])


def exhaustive_continuations(model, context, n, exclude=(), stop_id=None) -> dict[tuple[int, ...], float]:
    """Every continuation of up to n ids and its exact summed log-probability, by brute force.

    All V^n sequences run as one batch through the whole window (not step by
    step with a reordered state, as the search does), in float64.  A sequence
    ends right after its first ``stop_id``; one holding an excluded id is left out.
    """
    V = model.shape.vocab_size
    grid = np.stack(np.meshgrid(*[np.arange(V)] * n, indexing="ij"), axis=-1).reshape(-1, n)  # (V^n, n)
    B = len(grid)
    ids = np.concatenate([np.repeat(context[:, None], B, axis=1), grid.T], axis=0).astype(np.int32)  # (T, B)
    top, _, _ = model.hidden(ids[:-1], model.initial_state(B))  # (T-1, B, H)
    steps = top[len(context) - 1 :]  # (n, B, H): the states that predict each continuation id
    logp = model.log_probs(steps.reshape(n * B, -1)).astype(np.float64).reshape(n, B, V)
    picked = np.take_along_axis(logp, grid.T[:, :, None], axis=2)[:, :, 0]  # (n, B)
    out: dict[tuple[int, ...], float] = {}
    for col, seq in enumerate(grid.tolist()):
        end = seq.index(stop_id) + 1 if stop_id in seq else n
        seq = tuple(seq[:end])
        if seq not in out and not set(seq) & set(exclude):
            out[seq] = float(picked[:end, col].sum())
    return out


BEAM_CASES = [
    # (seed, vocab, n, exclude, stop_id)
    (0, 6, 2, (), None),
    (1, 6, 3, (), None),
    (2, 7, 3, (0,), None),
    (3, 6, 3, (), 2),
    (4, 6, 4, (5,), None),
    (5, 8, 3, (0, 1), 3),
    (6, 6, 4, (), 1),
]


@pytest.mark.parametrize("seed, vocab, n, exclude, stop", BEAM_CASES)
def test_a_beam_as_wide_as_the_search_space_is_exact(seed, vocab, n, exclude, stop):
    # with W >= V^(n-1) every prefix survives until the last step, so the search is exhaustive
    model = random_model(seed, cell="gru", vocab=vocab)
    model.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    model.dtype = np.dtype(np.float64)
    prompt = ctx(1, 4)
    truth = exhaustive_continuations(model, prompt, n, exclude, stop)
    ranked = sorted(truth.items(), key=lambda kv: -kv[1])
    width = vocab ** (n - 1)
    for w in (width, width + 3):
        got = beam_search(model, prompt, n, w, exclude=exclude, stop_id=stop)
        want = ranked[:w]
        assert [seq for seq, _ in got] == [list(seq) for seq, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed, vocab, n, exclude, stop", BEAM_CASES)
def test_a_narrow_beam_returns_true_scores_best_first(seed, vocab, n, exclude, stop):
    model = random_model(seed, cell="gru", vocab=vocab)
    prompt = ctx(1, 4)
    truth = exhaustive_continuations(model, prompt, n, exclude, stop)
    best = max(truth.values())
    for width in range(1, vocab ** (n - 1), max(1, vocab ** (n - 1) // 6)):
        got = beam_search(model, prompt, n, width, exclude=exclude, stop_id=stop)
        assert 1 <= len(got) <= width
        seqs = [tuple(seq) for seq, _ in got]
        assert len(set(seqs)) == len(seqs), seqs  # no continuation twice
        for seq, score in got:
            assert tuple(seq) in truth, seq  # a whole continuation: n ids, or ending at the stop id
            assert score == pytest.approx(truth[tuple(seq)], abs=1e-5), seq
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] <= best + 1e-5


# ------------------------------------------------------------------- scoring
def test_score_sequences_matches_step_by_step_and_handles_empty():
    model = random_model(4, cell="lstm")
    seqs = [ctx(3, 4, 2), ctx(), ctx(5), ctx(6, 6, 6, 6, 1)]
    got = score_sequences(model, seqs, start_id=1, batch=2)
    assert got[1].shape == (0,)
    for seq, lp in zip(seqs, got):
        state = model.initial_state(1)
        prev = 1
        for t, target in enumerate(seq.tolist()):
            top, state, _ = model.hidden(np.array([[prev]], dtype=np.int32), state)
            assert lp[t] == pytest.approx(float(model.log_probs(top[-1])[0, target]), abs=1e-5)
            prev = target
