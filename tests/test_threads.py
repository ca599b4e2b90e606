"""One model, many callers: no call writes into an array that another call reads (issue 19).

A cache from ``forward`` keeps its own arrays, so ``forward(a); forward(b); backward(cache_a)``
is a's gradient; and threads that share one loaded model get the answers they would get one
after the other, bit for bit.  NumPy lets go of the GIL inside its large operations, so threads
that wrote into one shared logits array (as ``FullSoftmax`` once did) read each other's numbers:
the inputs below are large enough, and the threads start together often enough, that such a
buffer changes the answers every run.
"""

import threading

import numpy as np
import pytest

from rnncli import softmax
from rnncli.fill import blank_regex, fill_lines, split_line
from rnncli.functional import rows_per_block, score_targets_
from rnncli.generate import next_log_probs, score_sequences, top_k_rows
from rnncli.infer import evaluate, load_model
from rnncli.model import ModelShape, RNNModel
from rnncli.optim import dense

from .conftest import TINY_TEXT

THREADS = 8


# ------------------------------------------------------ forward, forward, backward
def _model(softmax="full", tied=False, cell="lstm", V=23, H=6, dropout=0.0):
    shape = ModelShape(
        vocab_size=V,
        cell=cell,
        embedding_size=H,
        hidden_size=H,
        layers=2,
        dropout=dropout,
        tie_weights=tied,
        softmax=softmax,
        cutoffs=(5, 12),
    )
    model = RNNModel(shape)
    model.init_params(np.random.default_rng(0), 0.5)
    return model


def _assert_same_grads(got: dict, want: dict):
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(dense(got[name]), dense(want[name]), err_msg=name)


@pytest.mark.parametrize("softmax, tied", [("full", False), ("full", True), ("adaptive", False)])
def test_output_layer_cache_survives_the_next_forward(softmax, tied):
    model = _model(softmax, tied)
    layer, params = model.output, model.params
    rng = np.random.default_rng(1)
    N, H, V = 40, model.shape.hidden_size, model.shape.vocab_size
    h_a, h_b = (rng.standard_normal((N, H)).astype(np.float32) for _ in range(2))  # same shape: a buffer would fit both
    t_a, t_b = (rng.integers(0, V, N) for _ in range(2))

    loss_a, cache_a = layer.forward(params, h_a, t_a)
    want_dh, want = layer.backward(params, cache_a)
    loss_a2, cache_a = layer.forward(params, h_a, t_a)
    layer.forward(params, h_b, t_b)
    got_dh, got = layer.backward(params, cache_a)
    assert loss_a2 == loss_a
    np.testing.assert_array_equal(got_dh, want_dh)
    _assert_same_grads(got, want)


@pytest.mark.parametrize("softmax, tied", [("full", False), ("full", True), ("adaptive", False)])
def test_model_cache_survives_the_next_forward(softmax, tied):
    model = _model(softmax, tied, dropout=0.3)
    rng = np.random.default_rng(2)
    T, B, V = 7, 5, model.shape.vocab_size
    x_a, y_a, x_b, y_b = (rng.integers(0, V, (T, B)).astype(np.int32) for _ in range(4))
    state = model.initial_state(B)
    masks_a, masks_b = model.dropout_masks(rng, T, B), model.dropout_masks(rng, T, B)

    _, _, cache_a = model.forward(x_a, y_a, state, masks=masks_a)
    want = model.backward(cache_a)
    _, _, cache_a = model.forward(x_a, y_a, state, masks=masks_a)
    model.forward(x_b, y_b, state, masks=masks_b)
    _assert_same_grads(model.backward(cache_a), want)


def test_score_in_slices_is_score_in_one_pass(monkeypatch):
    """FullSoftmax.score's logits array is its own and bounded: slices of rows give the answers of one pass."""
    model = _model("full", V=50)
    V, H = model.shape.vocab_size, model.shape.hidden_size
    N = 3 * rows_per_block(V) + 17  # four slices, the last one short
    rng = np.random.default_rng(4)
    hidden, targets = rng.standard_normal((N, H)).astype(np.float32), rng.integers(0, V, N)
    want = score_targets_(hidden @ model.params["decoder.weight"].T, targets, model.params["decoder.bias"])
    monkeypatch.setattr(softmax, "SCORE_FLOATS", rows_per_block(V) * V)
    got = model.output.score(model.params, hidden, targets)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_a_workspace_gives_the_same_numbers_and_is_the_callers_alone():
    """The training loop's workspace: the same loss and gradients as a cache of its own, and the
    array lives in the caller's dict (a second workspace is a second array)."""
    model = _model("full")
    rng = np.random.default_rng(3)
    T, B, V = 6, 4, model.shape.vocab_size
    x, y = (rng.integers(0, V, (T, B)).astype(np.int32) for _ in range(2))
    state = model.initial_state(B)
    loss, _, cache = model.forward(x, y, state)
    want = model.backward(cache)
    ws1, ws2 = {}, {}
    for ws in (ws1, ws1, ws2):  # the second pass reuses ws1's array
        got_loss, _, cache = model.forward(x, y, state, workspace=ws)
        assert got_loss == loss
        _assert_same_grads(model.backward(cache), want)
    (a1,), (a2,) = ws1.values(), ws2.values()
    assert a1.shape == (T * B, V) and a1 is not a2
    assert not any(isinstance(v, np.ndarray) for v in vars(model.output).values())  # the layer holds no arrays


# ------------------------------------------------------------ threads at once
def _together(jobs, repeats: int) -> list[list]:
    """Run each job (no arguments) ``repeats`` times in a thread of its own, all threads starting
    each round together; returns each job's answers."""
    barrier = threading.Barrier(len(jobs))
    answers: list[list] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def work(i):
        try:
            for _ in range(repeats):
                barrier.wait()
                answers[i].append(jobs[i]())
        except BaseException as e:  # noqa: BLE001 (reported below, in the test's thread)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return answers


def _assert_equal(got, want, what: str):
    if isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want, err_msg=what)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), what
        for g, w in zip(got, want):
            _assert_equal(g, w, what)
    else:
        assert got == want, what


def _check_threads(make_job, repeats: int):
    """THREADS jobs on different inputs, run together ``repeats`` times: each answer must be the one
    the same job gives alone."""
    jobs = [make_job(i) for i in range(THREADS)]
    alone = [job() for job in jobs]
    assert all(repr(alone[0]) != repr(a) for a in alone[1:]), "the inputs should differ"
    for i, runs in enumerate(_together(jobs, repeats)):
        for r, got in enumerate(runs):
            _assert_equal(got, alone[i], f"thread {i}, round {r}")


@pytest.fixture(scope="module")
def served(tiny_run):
    model, tokenizer, vocab, _ = load_model(tiny_run)
    sentences = [vocab.encode(tokenizer.tokenize(line)) for line in TINY_TEXT.splitlines()]
    return model, tokenizer, vocab, sentences


def _sentences(sentences, i: int, n: int) -> list[np.ndarray]:
    """n sentences, a different order and mix for each i (all of one thread's inputs differ)."""
    rng = np.random.default_rng(100 + i)
    return [np.asarray(sentences[j], dtype=np.int32) for j in rng.integers(0, len(sentences), n)]


def test_threads_target_log_probs(served):
    model = served[0]
    N, H, V = 4000, model.shape.hidden_size, model.shape.vocab_size

    def make_job(i):
        rng = np.random.default_rng(i)
        hidden = rng.standard_normal((N, H)).astype(model.dtype)  # one shape for all: a shared buffer would fit
        targets = rng.integers(0, V, N)
        return lambda: model.target_log_probs(hidden, targets)

    _check_threads(make_job, repeats=30)


def test_threads_predict(served):
    model, _, vocab, sentences = served

    def make_job(i):
        contexts = [
            np.concatenate([[vocab.eos_id], s[: 1 + (k % len(s))]]) for k, s in enumerate(_sentences(sentences, i, 300))
        ]
        return lambda: top_k_rows(next_log_probs(model, contexts, dtype=np.float32), 5)

    _check_threads(make_job, repeats=5)


def test_threads_score(served):
    model, _, vocab, sentences = served

    def make_job(i):
        seqs = _sentences(sentences, i, 400)
        return lambda: score_sequences(model, seqs, vocab.eos_id)

    _check_threads(make_job, repeats=8)


def test_threads_evaluate(served):
    model, _, vocab, sentences = served

    def make_job(i):
        ids = np.concatenate([np.r_[s, vocab.eos_id] for s in _sentences(sentences, i, 400)]).astype(np.int32)
        ids = ids[:3000]  # one length for all: a shared buffer would fit every thread's windows

        def job():
            r = evaluate(model, ids, streams=10, chunk_rows=500, start_id=vocab.eos_id)  # six windows a call
            return r.nll, r.tokens, r.top1, r.top5

        return job

    _check_threads(make_job, repeats=20)


def test_threads_fill(served):
    model, tokenizer, vocab, _ = served
    lines = [line for line in TINY_TEXT.splitlines() if len(line.split()) > 4]
    pattern = blank_regex()

    def make_job(i):
        rng = np.random.default_rng(200 + i)
        blanked = []
        for line in (lines[j] for j in rng.integers(0, len(lines), 40)):
            words = line.split()
            k = int(rng.integers(1, len(words) - 1))
            blanked.append(split_line(" ".join(words[:k] + ["___"] + words[k + 1 :]), tokenizer, vocab, pattern))
        return lambda: [(r.fills, r.scores.tolist()) for r in fill_lines(model, None, blanked, vocab.eos_id)]

    _check_threads(make_job, repeats=8)
