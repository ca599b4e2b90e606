"""An ``rnn export`` file (``.onnx``) run by onnxruntime, as a network every reading command can use.

``load_onnx(path)`` gives the ``infer.Models`` of the file: its one network (forward or backward, as
``rnn.direction`` says) is an ``OnnxNetwork``, with the tokenizer and the vocabulary read from the
file's metadata (``onnx_export``'s docstring lists it), and for a word-piece model its piece model
(``rnn.pieces``), so that every command still speaks whole words.  ``OnnxNetwork`` offers the small surface that
inference calls (``generate``, ``infer``, ``fill``, ``complete``), over the graph's whole output::

    RNNModel:     ids (T, B) -> hidden -> top (T, B, H) -> log_probs -> (N, V)
    OnnxNetwork:  ids (T, B) -> hidden -> top (T, B, V) -> log_probs -> (N, V)   (the identity)

so its "top" is already the log-distribution of the next word, and ``shape.hidden_size`` is V, which
every ``top.reshape(-1, shape.hidden_size)`` needs.  The recurrent state keeps the project's layout
(one tuple per layer: (h,) or (h, c), each (B, H)); ``hidden`` stacks it into the graph's h0/c0
(L, B, H) and splits hn/cn back.  There are no weights in numpy (``params`` is empty), so nothing that
trains or reads a checkpoint's tensors can take this network; every inference path can.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint
from .errors import CheckpointError, ConfigError, UsageError
from .functional import score_log_probs
from .tokenizer import Tokenizer, Vocab


@dataclass(frozen=True)
class OnnxShape:
    """What inference reads of ``RNNModel.shape``: ``hidden_size`` is the width of ``hidden``'s top
    output, which here is the vocabulary (see the module's docstring); ``state_size`` is the graph's H."""

    vocab_size: int
    hidden_size: int  # = vocab_size: the top output is the log-distribution
    layers: int
    cell: str
    state_size: int  # H of h0/c0 (L, B, H)
    embedding_size: int = 0  # no embedding is computed in numpy
    softmax: str = "full"  # the graph gives the full distribution, whatever softmax it was trained with


@dataclass(frozen=True)
class OnnxKind:
    """What inference reads of a cell kind: ``state_size`` arrays per layer (2 for LSTM: h and c) and
    ``gates`` for ``generate.block_rows``, which then budgets 2 * L * V floats per row-step: the
    (row, V) output and onnxruntime's own buffers, well within ``WORK_FLOATS``."""

    state_size: int
    gates: int = 0


class LogProbOutput:
    """The output layer of an ``OnnxNetwork``: its input already is the log-distribution (N, V)."""

    def log_probs(self, params, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def score(self, params, x: np.ndarray, targets: np.ndarray, skip: int | None = None):
        """Each target's log-probability (N,) float64 and rank (N,), ranks and ``skip`` as
        ``functional.score_targets_`` counts them (the tie and ``<unk>`` rule: ``functional._fix_ranks``)."""
        return score_log_probs(x, targets, skip)


class OnnxNetwork:
    """One network of an ``rnn export`` file, run by one onnxruntime session (created once; its
    ``run`` may be called from several threads, as a ``Model`` may serve them)."""

    dtype = np.dtype(np.float32)
    params: dict = {}  # no numpy weights: the session holds them

    def __init__(self, session, shape: OnnxShape):
        self.session, self.shape = session, shape
        self.kind = OnnxKind(2 if shape.cell == "lstm" else 1)
        self.output = LogProbOutput()

    def initial_state(self, batch_size: int) -> list[tuple[np.ndarray, ...]]:
        H = self.shape.state_size
        return [
            tuple(np.zeros((batch_size, H), dtype=np.float32) for _ in range(self.kind.state_size))
            for _ in range(self.shape.layers)
        ]

    def hidden(self, ids: np.ndarray, state, rng=None, masks=None, keep_cache: bool = False):
        """ids (T, B) -> (log-probabilities (T, B, V) float32, the state after the window, cache).

        The graph gives only the state after the window; with ``keep_cache`` the window is read one
        step at a time, and the cache holds the state after each step (``step_states``)."""
        T, B = ids.shape
        if T == 0 or B == 0:  # nothing to read: onnxruntime's recurrent ops want a step and a stream
            return np.zeros((T, B, self.shape.vocab_size), dtype=np.float32), state, None
        if keep_cache:
            tops, steps = [], []
            for t in range(T):
                top, state, _ = self.hidden(ids[t : t + 1], state)
                tops.append(top)
                steps.append(state)
            cache = [
                tuple(np.stack([s[i][k] for s in steps]) for k in range(self.kind.state_size))
                for i in range(self.shape.layers)
            ]
            return np.concatenate(tops), state, cache
        feeds = {"input_ids": np.asarray(ids, dtype=np.int64), "h0": np.stack([layer[0] for layer in state])}
        if self.kind.state_size == 2:
            feeds["c0"] = np.stack([layer[1] for layer in state])  # (L, B, H)
        out = self.session.run(None, feeds)  # log_probs (T, B, V), hn (L, B, H)[, cn (L, B, H)]
        new_state = [tuple(arrays) for arrays in zip(*out[1:])]  # per layer: (h,) or (h, c), each (B, H)
        return out[0], new_state, None

    def step_states(self, cache) -> list[tuple[np.ndarray, ...]]:
        """The state after every step of a window run with ``keep_cache``: per layer, arrays (T, B, H)."""
        return cache

    def log_probs(self, top: np.ndarray) -> np.ndarray:
        """(N, V) rows of ``hidden``'s output -> themselves (they are the log-probabilities)."""
        return np.asarray(top, dtype=np.float32)

    def target_log_probs(self, top: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N, V) rows of ``hidden``'s output, (N,) ids -> (N,) float64 log-probability of each id."""
        return top[np.arange(len(targets)), targets].astype(np.float64)


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        from .onnx_export import INSTALL_HINT

        raise UsageError(f"running an .onnx file needs the onnxruntime package: {INSTALL_HINT}") from None
    return onnxruntime


def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_onnx(path):
    """The ``infer.Models`` of an ``rnn export`` file; a CheckpointError (one line) for a file that
    onnxruntime cannot read or that is not an rnn export (its metadata or its inputs differ)."""
    from .infer import Models

    ort = _require_onnxruntime()
    path = Path(path).resolve()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...) for a bad file
        raise CheckpointError(f"{path}: not a readable ONNX model ({_one_line(e)})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if "rnn.vocab" not in meta:
        raise CheckpointError(f"{path}: not an rnn export (no rnn.vocab metadata); make one with rnn export")
    try:
        itos = json.loads(meta["rnn.vocab"])
        vocab = Vocab.from_dict({"itos": itos, "counts": [0] * len(itos) if isinstance(itos, list) else None})
        settings = json.loads(meta.get("rnn.tokenizer", "{}"))
        tokenizer = Tokenizer.from_dict(settings)
        shape, direction = _shape(session, meta, len(vocab))
    except (ValueError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: damaged rnn export ({_one_line(e)})") from None
    ckpt = Checkpoint(path, {}, {"tokenizer": settings, "onnx": {"cell": shape.cell, "direction": direction}}, {})
    pieces = _pieces(path, meta, vocab) if meta.get("rnn.units") == "pieces" else None
    net = OnnxNetwork(session, shape)
    forward, backward = (net, None) if direction == "forward" else (None, net)
    return Models(forward, backward, tokenizer, vocab, ckpt, pieces)


def _pieces(path: Path, meta: dict, vocab: Vocab):
    """The piece model a word-piece export carries (``rnn.pieces``: base64 of its protobuf bytes)."""
    import base64

    from .pieces import load_pieces

    if "rnn.pieces" not in meta:
        raise CheckpointError(f"{path}: damaged rnn export (rnn.units is pieces, but there is no rnn.pieces)")
    try:
        proto = base64.b64decode(meta["rnn.pieces"], validate=True)
    except ValueError as e:  # binascii.Error, or characters outside ASCII
        raise CheckpointError(f"{path}: damaged rnn export (rnn.pieces: {_one_line(e)})") from None
    return load_pieces(proto, vocab, f"{path} (rnn.pieces)")


def _shape(session, meta: dict, V: int) -> tuple[OnnxShape, str]:
    """The network's shape from the graph's inputs and outputs; ValueError where they are not an export's."""
    units, cell, direction = meta.get("rnn.units", "words"), meta.get("rnn.cell"), meta.get("rnn.direction")
    if units not in ("words", "pieces"):
        raise ValueError(f"rnn.units {units!r} is not words or pieces")
    if units == "words" and "rnn.pieces" in meta:  # read as words, its vocabulary of pieces would answer
        raise ValueError("rnn.units is words, but the file carries a piece model (rnn.pieces)")
    if cell not in ("rnn", "lstm", "gru") or direction not in ("forward", "backward"):
        raise ValueError(f"rnn.cell {cell!r}, rnn.direction {direction!r}")
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    if sorted(inputs) != sorted(["input_ids", *states]) or outputs != ["log_probs"] + [s[0] + "n" for s in states]:
        raise ValueError(f"inputs {sorted(inputs)} and outputs {outputs} are not those of an {cell} export")
    L, _, H = inputs["h0"]
    if not (isinstance(L, int) and isinstance(H, int)):
        raise ValueError(f"h0 has shape {inputs['h0']}, not (layers, B, hidden)")
    return OnnxShape(vocab_size=V, hidden_size=V, layers=L, cell=cell, state_size=H), direction
