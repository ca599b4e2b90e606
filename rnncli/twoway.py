"""Reading the text the other way: backward models and the two-way pair (``model.direction``).

A *backward* model is the ordinary network trained on the text read right to left, so that its
hidden state carries the words that come *after*: fed the reversed token stream it predicts, at
each step, the word before.  ``reverse_stream`` makes that stream so that sentence ends stay
sentence ends: ``a b c <eos> d e <eos>`` becomes ``e d <eos> c b a <eos>``, every sentence read from
its last word to its first and closed by an ``<eos>``, with as many tokens and ``<eos>`` as the
forward stream (so the two directions' perplexities are over the same tokens).

``TwoWayModel`` holds a forward and a backward network that train in one run (``direction:
both``): separate weights, one optimizer over both, one window of the forward stream and the same
window of the reversed stream per step.  It looks like one ``RNNModel`` to the trainer: its
parameters are the forward network's, under their usual names, and the backward network's under
``backward.`` + the same names.
"""

from __future__ import annotations

import numpy as np

from .model import RNNModel

BACKWARD_PREFIX = "backward."
DIRECTIONS = ("forward", "backward", "both")


def reverse_stream(ids: np.ndarray, eos_id: int, begins: np.ndarray | None = None) -> np.ndarray:
    """The token stream read right to left, each sentence still closed by an <eos> (see above).

    A stream that does not end with <eos> is simply reversed.  The result has the same length and
    the same tokens; ``reverse_stream`` of a stream ending in <eos> is its own inverse.  ``begins``
    ((V,) bool, a word-piece model's units that begin a word): the words come in reverse order, each
    still spelled left to right, so that a word ends where the next unit begins one in both directions.
    """
    ids = np.asarray(ids)
    flip = _reverse_words if begins is not None else (lambda a, _: a[::-1].copy())
    if len(ids) and ids[-1] == eos_id:
        return np.concatenate([flip(ids[:-1], begins), ids[-1:]]) if len(ids) > 1 else ids.copy()
    return flip(ids, begins)


def _reverse_words(ids: np.ndarray, begins: np.ndarray) -> np.ndarray:
    if not len(ids):
        return ids.copy()
    starts = np.flatnonzero(begins[ids])
    if not starts.size or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    lengths = np.diff(np.append(starts, len(ids)))
    back_starts, back_lengths = starts[::-1], lengths[::-1]
    out_starts = np.cumsum(back_lengths) - back_lengths
    return ids[np.repeat(back_starts - out_starts, back_lengths) + np.arange(len(ids))]


def split_weights(weights: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """A two-way checkpoint's tensors -> (forward's, backward's), each under torch.nn names."""
    forward = {k: v for k, v in weights.items() if not k.startswith(BACKWARD_PREFIX)}
    backward = {k[len(BACKWARD_PREFIX) :]: v for k, v in weights.items() if k.startswith(BACKWARD_PREFIX)}
    return forward, backward


class TwoWayModel:
    """A forward and a backward RNNModel of one shape, trained together (``model.direction: both``).

    Windows are (T, B, 2): ``[..., 0]`` from the forward stream, ``[..., 1]`` from the reversed one.
    The loss reported is the mean of the two directions' mean losses; the gradient of each network
    is that of its own loss, so each learns as it would alone (one optimizer and, when
    ``train.clip`` is set, one gradient norm over both).
    """

    def __init__(self, forward: RNNModel, backward: RNNModel):
        self.forward_model, self.backward_model = forward, backward
        self.shape, self.kind, self.dtype, self.output = forward.shape, forward.kind, forward.dtype, forward.output
        self.params = dict(forward.params)  # the same arrays: an update here is an update there
        self.params.update({BACKWARD_PREFIX + k: v for k, v in backward.params.items()})
        self.state_layers = 2 * forward.shape.layers

    def parts(self):
        return self.forward_model, self.backward_model

    def num_params(self) -> int:
        return self.forward_model.num_params() + self.backward_model.num_params()

    def init_params(self, rng: np.random.Generator, init_range: float) -> None:
        self.forward_model.init_params(rng, init_range)
        self.backward_model.init_params(rng, init_range)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = self.forward_model.state_dict()
        out.update({BACKWARD_PREFIX + k: v for k, v in self.backward_model.state_dict().items()})
        return out

    def load_state_dict(self, weights: dict[str, np.ndarray]) -> None:
        forward, backward = split_weights(weights)
        self.forward_model.load_state_dict(forward)
        try:
            self.backward_model.load_state_dict(backward)
        except ValueError as e:
            raise ValueError(f"{e} (of the backward network, under {BACKWARD_PREFIX}*)") from None

    def initial_state(self, batch_size: int):
        return self.forward_model.initial_state(batch_size) + self.backward_model.initial_state(batch_size)

    def dropout_masks(self, rng: np.random.Generator, T: int, B: int) -> list | None:
        masks = self.forward_model.dropout_masks(rng, T, B)
        return None if masks is None else masks + self.backward_model.dropout_masks(rng, T, B)

    def _halves(self, items):
        k = len(items) // 2
        return items[:k], items[k:]

    def forward(self, ids, targets, state, *, rng=None, masks=None, workspace: dict | None = None):
        """Mean loss of both directions on a (T, B, 2) window; returns (loss, state, cache).

        ``workspace`` as RNNModel.forward's: each network's output layer keeps its own array there."""
        if masks is None and rng is not None:
            masks = self.dropout_masks(rng, ids.shape[0], ids.shape[1])
        mf, mb = self._halves(masks) if masks is not None else (None, None)
        sf, sb = self._halves(state)
        loss_f, state_f, cache_f = self.forward_model.forward(
            np.ascontiguousarray(ids[..., 0]), np.ascontiguousarray(targets[..., 0]), sf, masks=mf, workspace=workspace
        )
        loss_b, state_b, cache_b = self.backward_model.forward(
            np.ascontiguousarray(ids[..., 1]), np.ascontiguousarray(targets[..., 1]), sb, masks=mb, workspace=workspace
        )
        return 0.5 * (loss_f + loss_b), state_f + state_b, (cache_f, cache_b)

    def backward(self, cache, on_ready=None) -> dict:
        """Each network's gradient of its own mean loss, under the two-way names."""
        cache_f, cache_b = cache

        def renamed(grads: dict) -> None:
            on_ready({BACKWARD_PREFIX + k: v for k, v in grads.items()})

        grads = self.forward_model.backward(cache_f, on_ready=on_ready)
        back = self.backward_model.backward(cache_b, on_ready=renamed if on_ready is not None else None)
        grads.update({BACKWARD_PREFIX + k: v for k, v in back.items()})
        return grads
