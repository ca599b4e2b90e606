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


@pytest.mark.parametrize("stop", [None, 2])
def test_wider_beams_never_score_worse_than_greedy(stop):
    for seed in range(12):
        model = random_model(seed, cell="gru")
        g_score = greedy(model, ctx(1), 6, stop_id=stop)[1]
        for width in (2, 3, 5):
            beams = beam_search(model, ctx(1), 6, width, stop_id=stop)
            assert 1 <= len(beams) <= width
            scores = [s for _, s in beams]
            assert scores == sorted(scores, reverse=True)
            assert scores[0] >= g_score - 1e-5  # float32 sums: a few ulps either way


def test_beam_scores_are_the_model_log_probabilities():
    model = random_model(2)
    for ids, score in beam_search(model, ctx(1, 3), 5, 4):
        full = np.concatenate([ctx(1, 3), ids]).astype(np.int32)
        logp = score_sequences(model, [full[1:]], start_id=1)[0]
        assert score == pytest.approx(float(logp[1:].sum()), rel=1e-5)  # logp[0] is the prompt's "3"


def test_beam_search_finds_the_exact_best_of_a_small_space():
    model = random_model(9, vocab=4)
    n = 3
    best = max(
        (float(score_sequences(model, [np.array([2, a, b, c])], start_id=1)[0][1:].sum()), [a, b, c])
        for a in range(4)
        for b in range(4)
        for c in range(4)
    )
    [(ids, score)] = beam_search(model, ctx(1, 2), n, 64)[:1]
    assert ids == best[1] and score == pytest.approx(best[0], rel=1e-5)


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
