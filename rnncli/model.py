"""The language model: embedding -> stacked recurrent layers -> linear output -> softmax.

Parameters live in one flat dict named as PyTorch's ``word_language_model``
names them (``encoder.weight``, ``rnn.weight_ih_l0``, ..., ``decoder.weight``,
``decoder.bias``), with PyTorch's shapes, so a checkpoint's tensors load into
``torch.nn.Embedding``, ``torch.nn.RNN/LSTM/GRU`` and ``torch.nn.Linear`` by name.

``forward`` runs one window of token ids ``(T, B)`` and returns the loss and a
cache value; ``backward(cache)`` returns the gradient of every parameter,
summed over all T steps of the window (backpropagation through time).  The
hidden state leaving a window is returned separately so that the caller can
carry it into the next window without carrying the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .cells import CELLS
from .config import Config, ModelConfig
from .functional import dropout_mask
from .softmax import AdaptiveSoftmax, FullSoftmax

State = list[tuple[np.ndarray, ...]]  # one tuple per layer: (h,) or (h, c), each (B, H)


_DEFAULT = ModelConfig()  # the defaults live in config.py alone


@dataclass(frozen=True)
class ModelShape:
    """Everything that fixes the parameter shapes and the computation (built from a config by
    ``from_config``, the one place that does; the defaults are ``config.ModelConfig``'s)."""

    vocab_size: int
    cell: str = _DEFAULT.cell
    embedding_size: int = _DEFAULT.embedding_size
    hidden_size: int = _DEFAULT.hidden_size
    layers: int = _DEFAULT.layers
    dropout: float = _DEFAULT.dropout
    tie_weights: bool = _DEFAULT.tie_weights
    softmax: str = _DEFAULT.softmax  # "full" or "adaptive"
    cutoffs: tuple[int, ...] = tuple(_DEFAULT.cutoffs)  # adaptive softmax cluster bounds (word ranks)
    div_value: float = _DEFAULT.div_value  # adaptive softmax: projection shrink factor per tail cluster

    @classmethod
    def from_config(cls, cfg: Config | ModelConfig, vocab_size: int) -> ModelShape:
        """The shape that a config's ``model`` section gives, for a vocabulary of ``vocab_size`` words:
        what training builds, and what loading a checkpoint builds again from the config it holds."""
        m = cfg.model if isinstance(cfg, Config) else cfg
        return cls(
            vocab_size=vocab_size,
            cell=m.cell,
            embedding_size=m.embedding_size,
            hidden_size=m.hidden_size,
            layers=m.layers,
            dropout=m.dropout,
            tie_weights=m.tie_weights,
            softmax=m.softmax,
            cutoffs=tuple(m.cutoffs),
            div_value=m.div_value,
        )


class RNNModel:
    def __init__(self, shape: ModelShape, dtype: np.dtype | type = np.float32, allocate: bool = True):
        if shape.cell not in CELLS:
            raise ValueError(f"unknown cell {shape.cell!r}")
        if shape.tie_weights and shape.embedding_size != shape.hidden_size:
            raise ValueError("tied weights need embedding_size == hidden_size")
        if shape.tie_weights and shape.softmax != "full":
            raise ValueError("tied weights need the full softmax")
        self.shape = shape
        self.kind = CELLS[shape.cell]
        if shape.softmax == "adaptive":
            self.output = AdaptiveSoftmax(shape.vocab_size, shape.hidden_size, shape.cutoffs, shape.div_value)
        else:
            self.output = FullSoftmax(shape.vocab_size, shape.hidden_size, shape.tie_weights)
        self.dtype = np.dtype(dtype)
        self.params: dict[str, np.ndarray] = {}  # allocate=False: only the shapes (sizing a model)
        if allocate:
            self.params = {name: np.zeros(s, dtype=self.dtype) for name, s in self.param_shapes().items()}

    # ------------------------------------------------------------ parameters
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Trainable parameters and their shapes (a tied decoder weight is not listed)."""
        s = self.shape
        G, H = self.kind.gates, s.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"encoder.weight": (s.vocab_size, s.embedding_size)}
        for k in range(s.layers):
            fan_in = s.embedding_size if k == 0 else H
            shapes[f"rnn.weight_ih_l{k}"] = (G * H, fan_in)
            shapes[f"rnn.weight_hh_l{k}"] = (G * H, H)
            shapes[f"rnn.bias_ih_l{k}"] = (G * H,)
            shapes[f"rnn.bias_hh_l{k}"] = (G * H,)
        shapes.update(self.output.param_shapes())
        return shapes

    def init_params(self, rng: np.random.Generator, init_range: float) -> None:
        """Uniform(-init_range, init_range) for every weight and bias; zero output bias."""
        for name, p in self.params.items():
            if name in ("decoder.bias", "decoder.head.bias"):
                p[...] = 0.0
            else:
                p[...] = rng.uniform(-init_range, init_range, size=p.shape)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters under PyTorch's names, with the tied decoder weight written out too."""
        out = dict(self.params)
        if self.shape.tie_weights:
            out["decoder.weight"] = self.params["encoder.weight"]  # written out, as torch's state_dict does
        return out

    def load_state_dict(self, weights: dict[str, np.ndarray]) -> None:
        """Copy tensors into the parameters, checking names, shapes and finiteness (ValueError)."""
        for name, shape in self.param_shapes().items():
            w = weights.get(name)
            if w is None:
                raise ValueError(f"tensor {name} is missing")
            if tuple(w.shape) != shape:
                raise ValueError(f"tensor {name} has shape {tuple(w.shape)}, expected {shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"tensor {name} holds NaN or infinite values")
            self.params[name][...] = w

    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    @property
    def state_layers(self) -> int:
        """Entries of a hidden state (one per layer; a two-way pair has both networks')."""
        return self.shape.layers

    # ----------------------------------------------------------------- state
    def initial_state(self, batch_size: int) -> State:
        H = self.shape.hidden_size
        return [
            tuple(np.zeros((batch_size, H), dtype=self.dtype) for _ in range(self.kind.state_size))
            for _ in range(self.shape.layers)
        ]

    def _layer_params(self, k: int):
        p = self.params
        return (p[f"rnn.weight_ih_l{k}"], p[f"rnn.weight_hh_l{k}"], p[f"rnn.bias_ih_l{k}"], p[f"rnn.bias_hh_l{k}"])

    # --------------------------------------------------------------- forward
    def hidden(
        self,
        ids: np.ndarray,
        state: State,
        *,
        rng: np.random.Generator | None = None,
        masks: list | None = None,
        keep_cache: bool = False,
    ):
        """Run the recurrent stack over ids (T, B); returns (top hidden (T, B, H), new state, cache).

        Dropout is active when ``rng`` is given (training) or when explicit
        ``masks`` are passed (gradient checks): one mask on the embeddings and
        one on each layer's output, the last one being the input of the decoder.
        """
        s = self.shape
        W_enc = self.params["encoder.weight"]
        x = W_enc[ids]  # (T, B, E)
        T, B = ids.shape
        if masks is None and rng is not None:
            masks = self.dropout_masks(rng, T, B)
        if masks is not None and masks[0] is not None:
            x = x * masks[0]
        new_state: State = []
        caches = []
        for k in range(s.layers):
            out, st, cache = self.kind.forward(*self._layer_params(k), x, state[k])
            new_state.append(st)
            if keep_cache:
                caches.append(cache)
            if masks is not None and masks[k + 1] is not None:
                out = out * masks[k + 1]  # (T, B, H)
            x = out
        return x, new_state, (ids, masks, caches, x)

    def step_states(self, cache) -> State:
        """The state after every step of a window run with ``keep_cache``: per layer, arrays (T, B, H)."""
        n = len(self.initial_state(0)[0])  # arrays in one layer's state: (h,) or, for LSTM, (h, c)
        return [tuple(a[1:] for a in layer[1 : 1 + n]) for layer in cache[2]]

    def dropout_masks(self, rng: np.random.Generator, T: int, B: int) -> list | None:
        """One window's dropout masks for B streams: the embeddings' (T, B, E), then each layer's (T, B, H).

        Data-parallel workers draw the masks of the whole batch from the same generator and each
        uses its own streams' columns, so that K workers train the model one process trains.
        """
        s = self.shape
        if s.dropout <= 0:
            return None
        masks = [dropout_mask(rng, (T, B, s.embedding_size), s.dropout, self.dtype)]
        masks += [dropout_mask(rng, (T, B, s.hidden_size), s.dropout, self.dtype) for _ in range(s.layers)]
        return masks

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """(N, H) hidden -> (N, V) logits (full softmax only; use log_probs in general)."""
        return self.output.logits(self.params, hidden)

    def log_probs(self, hidden: np.ndarray) -> np.ndarray:
        """(N, H) hidden -> (N, V) normalised log-probabilities of the next word."""
        return self.output.log_probs(self.params, hidden)

    def target_log_probs(self, hidden: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N, H) hidden, (N,) ids -> (N,) float64 log-probability of each id: exact, without the
        (N, V) distribution where the output layer can avoid it (the adaptive softmax's tails)."""
        return self.output.target_log_probs(self.params, hidden, targets)

    def forward(self, ids, targets, state, *, rng=None, masks=None, workspace: dict | None = None):
        """Loss (mean nats per token) of targets (T, B) given ids (T, B); returns (loss, state, cache).

        The cache owns its arrays, unless ``workspace`` is given: a dict that the caller owns and
        passes to every window (the training loop), in which the output layer reuses its (N, V)
        array; that cache is valid until the next forward given the same workspace.
        """
        top, new_state, (ids, masks, caches, _) = self.hidden(ids, state, rng=rng, masks=masks, keep_cache=True)
        T, B, H = top.shape
        flat_top, flat_targets = top.reshape(T * B, H), targets.reshape(-1)
        loss, out_cache = self.output.forward(self.params, flat_top, flat_targets, workspace=workspace)
        return loss, new_state, (ids, masks, caches, out_cache)

    # -------------------------------------------------------------- backward
    def backward(self, cache, on_ready: Callable[[dict], None] | None = None) -> dict:
        """Gradient of the window's mean loss with respect to every trainable parameter.

        The embedding's gradient is a ``RowGrad`` (only the rows of this window's
        words) unless the weights are tied; ``optim.dense`` turns it into an array.
        ``on_ready`` receives each part's gradients as soon as they are final (the output
        layer, then each recurrent layer from the top, then the embedding), so that a
        data-parallel reduction can start while the rest of the backward pass runs.
        """
        ids, masks, caches, out_cache = cache
        s = self.shape
        T, B = ids.shape
        dflat, grads = self.output.backward(self.params, out_cache)
        # with tied weights the output layer's gradient arrives as "encoder.weight"
        dW_tied = grads.pop("encoder.weight", None)
        if on_ready is not None:
            on_ready(dict(grads))
        dx = dflat.reshape(T, B, s.hidden_size)  # (T, B, H)
        for k in range(s.layers - 1, -1, -1):
            if masks is not None and masks[k + 1] is not None:
                dx = dx * masks[k + 1]
            W_ih, W_hh, _, _ = self._layer_params(k)
            # the state handed to the next window is detached: no gradient flows back from it
            zeros = tuple(np.zeros((B, s.hidden_size), dtype=self.dtype) for _ in range(self.kind.state_size))
            dx, _, (dW_ih, dW_hh, db_ih, db_hh) = self.kind.backward(W_ih, W_hh, caches[k], dx, zeros)
            grads[f"rnn.weight_ih_l{k}"] = dW_ih
            grads[f"rnn.weight_hh_l{k}"] = dW_hh
            grads[f"rnn.bias_ih_l{k}"] = db_ih
            grads[f"rnn.bias_hh_l{k}"] = db_hh
            if on_ready is not None:
                names = (f"rnn.{n}_l{k}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                on_ready({name: grads[name] for name in names})
        if masks is not None and masks[0] is not None:
            dx = dx * masks[0]
        # Only the rows of the words in this window have a gradient: sum the window's
        # per-token gradients into one row per distinct word (a sorted segment sum).
        flat_ids = ids.reshape(-1)
        order = np.argsort(flat_ids, kind="stable")
        sorted_ids = flat_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        rows = np.add.reduceat(dx.reshape(T * B, s.embedding_size)[order], starts, axis=0)  # (K, E)
        from .optim import RowGrad  # here: reading a model (predict) needs no optimizer code

        g_enc = RowGrad(sorted_ids[starts], rows, self.params["encoder.weight"].shape)
        if dW_tied is not None:
            dW_tied[g_enc.indices] += g_enc.values  # one matrix, two uses: the gradients add
            grads["encoder.weight"] = dW_tied
        else:
            grads["encoder.weight"] = g_enc
        if on_ready is not None:
            on_ready({"encoder.weight": grads["encoder.weight"]})
        return grads
