"""Same weights, same outputs and gradients as PyTorch (runs when torch is installed)."""

import numpy as np
import pytest

from rnncli.model import ModelShape, RNNModel
from rnncli.optim import dense

torch = pytest.importorskip("torch")


class TorchLM(torch.nn.Module):
    """The shape of pytorch/examples word_language_model, built from torch.nn parts."""

    def __init__(self, s: ModelShape):
        super().__init__()
        self.encoder = torch.nn.Embedding(s.vocab_size, s.embedding_size)
        cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[s.cell]
        kw = {"nonlinearity": "tanh"} if s.cell == "rnn" else {}
        self.rnn = cls(s.embedding_size, s.hidden_size, s.layers, **kw)
        self.decoder = torch.nn.Linear(s.hidden_size, s.vocab_size)
        if s.tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, ids, state):
        out, state = self.rnn(self.encoder(ids), state)
        return self.decoder(out).reshape(-1, self.decoder.out_features), state


def to_torch_state(cell, state):
    hs = torch.from_numpy(np.stack([layer[0] for layer in state]))
    if cell == "lstm":
        return hs, torch.from_numpy(np.stack([layer[1] for layer in state]))
    return hs


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("tie", [False, True])
def test_logits_and_gradients_equal_pytorch(cell, layers, tie):
    torch.manual_seed(0)
    shape = ModelShape(vocab_size=50, cell=cell, embedding_size=16, hidden_size=16, layers=layers, tie_weights=tie)
    ours = RNNModel(shape)
    ours.init_params(np.random.default_rng(0), 0.3)
    ref = TorchLM(shape)
    missing, unexpected = ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    assert not missing and not unexpected

    rng = np.random.default_rng(1)
    T, B = 7, 4
    state = ours.initial_state(B)
    t_state = to_torch_state(cell, state)
    for window in range(2):  # the hidden state carried from the first window into the second
        ids = rng.integers(0, 50, size=(T, B))
        targets = rng.integers(0, 50, size=(T, B))
        top, _, _ = ours.hidden(ids, state)
        logits = ours.logits(top.reshape(T * B, -1))
        loss, new_state, cache = ours.forward(ids, targets, state)
        grads = ours.backward(cache)

        ref.zero_grad()
        t_logits, t_new = ref(torch.from_numpy(ids), t_state)
        t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(targets.reshape(-1)))
        t_loss.backward()

        np.testing.assert_allclose(logits, t_logits.detach().numpy(), atol=1e-5, rtol=0)
        assert abs(loss - t_loss.item()) < 1e-5
        t_params = dict(ref.named_parameters())
        for name, g in ((n, dense(g)) for n, g in grads.items()):
            tg = t_params[name].grad.numpy()
            rel = np.linalg.norm(g - tg) / np.linalg.norm(tg)
            assert rel < 1e-4, f"{cell} layers={layers} tie={tie} window={window}: {name} rel {rel:.2e}"
        state = new_state
        t_state = tuple(s.detach() for s in t_new) if cell == "lstm" else t_new.detach()
        t_h = t_state[0] if cell == "lstm" else t_state
        np.testing.assert_allclose(np.stack([layer[0] for layer in state]), t_h.numpy(), atol=1e-5)


def test_adaptive_softmax_equals_torch_adaptive_log_softmax():
    shape = ModelShape(
        vocab_size=60,
        cell="lstm",
        embedding_size=16,
        hidden_size=16,
        softmax="adaptive",
        cutoffs=(10, 30),
        div_value=2.0,
    )
    ours = RNNModel(shape)
    ours.init_params(np.random.default_rng(3), 0.3)
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 60, cutoffs=[10, 30], div_value=2.0, head_bias=True)
    decoder = {
        k[len("decoder.") :]: torch.from_numpy(v.copy()) for k, v in ours.params.items() if k.startswith("decoder.")
    }
    missing, unexpected = ref.load_state_dict(decoder)
    assert not missing and not unexpected
    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(40, 16)).astype(np.float32)
    targets = rng.integers(0, 60, size=40)
    t_hidden = torch.from_numpy(hidden).requires_grad_()
    np.testing.assert_allclose(ours.log_probs(hidden), ref.log_prob(t_hidden).detach().numpy(), atol=1e-5)
    loss, cache = ours.output.forward(ours.params, hidden, targets)
    dhidden, grads = ours.output.backward(ours.params, cache)
    t_out = ref(t_hidden, torch.from_numpy(targets))
    t_out.loss.backward()
    assert abs(loss - t_out.loss.item()) < 1e-5
    np.testing.assert_allclose(dhidden, t_hidden.grad.numpy(), atol=1e-6)
    for name, p in ref.named_parameters():
        g = grads["decoder." + name]
        assert np.linalg.norm(g - p.grad.numpy()) / np.linalg.norm(p.grad.numpy()) < 1e-4, name
