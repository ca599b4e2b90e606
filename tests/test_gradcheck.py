"""Numerical gradient checks: every parameter, central differences in float64."""

import numpy as np
import pytest

from rnncli.functional import dropout_mask
from rnncli.model import ModelShape, RNNModel
from rnncli.optim import dense


def _model(cell, layers, tie, dropout=0.0, V=11, E=5, H=5, **kw):
    shape = ModelShape(
        vocab_size=V,
        cell=cell,
        embedding_size=E,
        hidden_size=H if not tie else E,
        layers=layers,
        dropout=dropout,
        tie_weights=tie,
        **kw,
    )
    model = RNNModel(shape, dtype=np.float64)
    model.init_params(np.random.default_rng(0), 0.5)
    return model


def _check(model, T=4, B=3, masks=None, seed=1):
    rng = np.random.default_rng(seed)
    V = model.shape.vocab_size
    ids = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    # a non-zero carried-in state, as in the middle of a stream
    state = [tuple(rng.normal(0, 0.5, size=a.shape) for a in layer) for layer in model.initial_state(B)]

    def loss_fn():
        return model.forward(ids, targets, state, masks=masks)[0]

    _, _, cache = model.forward(ids, targets, state, masks=masks)
    grads = model.backward(cache)
    assert set(grads) == set(model.params)
    eps = 1e-5
    failures = []
    for name, p in model.params.items():
        num = np.zeros_like(p)
        flat = p.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = loss_fn()
            flat[i] = old - eps
            down = loss_fn()
            flat[i] = old
            num.reshape(-1)[i] = (up - down) / (2 * eps)
        g = dense(grads[name])
        rel = np.linalg.norm(g - num) / max(np.linalg.norm(g) + np.linalg.norm(num), 1e-12)
        if rel > 1e-6:
            failures.append(f"{name}: relative error {rel:.2e}")
    assert not failures, "gradient check failed for " + "; ".join(failures)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("tie", [False, True])
def test_gradients_match_central_differences(cell, layers, tie):
    _check(_model(cell, layers, tie))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_with_fixed_dropout_masks(cell):
    model = _model(cell, 2, False, dropout=0.3)
    rng = np.random.default_rng(5)
    T, B = 4, 3
    masks = [dropout_mask(rng, (T, B, model.shape.embedding_size), 0.3, model.dtype)]
    masks += [dropout_mask(rng, (T, B, model.shape.hidden_size), 0.3, model.dtype) for _ in range(2)]
    assert any((m == 0).any() for m in masks)  # the masks really drop something
    _check(model, T=T, B=B, masks=masks)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_gradients_of_the_adaptive_softmax(cell):
    # 23 words: head of 4 (+2 cluster entries), tails of 6 and 13 words projected to 4 and 2 dims
    model = _model(cell, 1, False, V=23, E=5, H=8, softmax="adaptive", cutoffs=(4, 10), div_value=2.0)
    _check(model, T=6, B=4)


def test_a_wrong_gradient_is_caught_and_named(monkeypatch):
    """The check itself must be able to fail: corrupt one gradient and expect its name."""
    model = _model("rnn", 1, False)
    real_backward = model.backward

    def broken(cache):
        grads = real_backward(cache)
        grads["rnn.weight_hh_l0"] = grads["rnn.weight_hh_l0"] * 1.01
        return grads

    monkeypatch.setattr(model, "backward", broken)
    with pytest.raises(AssertionError, match="rnn.weight_hh_l0"):
        _check(model)
