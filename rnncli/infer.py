"""Using a trained model: load it from a checkpoint, score text (perplexity, top-k accuracy).

No backward bookkeeping here: only the forward pass, over large chunks.  Next-word
top-k, sampling, beam search and per-line scores live in `generate` (re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .generate import block_rows, next_word_probs, sample_continuation, top_k
from .metrics import perplexity
from .model import ModelShape, RNNModel
from .tokenizer import Tokenizer, Vocab
from .twoway import split_weights

if TYPE_CHECKING:
    from .pieces import Pieces

__all__ = [
    "load_model",
    "load_models",
    "Models",
    "load_text_side",
    "load_weights",
    "evaluate",
    "EvalResult",
    "next_word_probs",
    "sample_continuation",
    "top_k",
]


def load_weights(model: RNNModel, ckpt: Checkpoint) -> None:
    """The weights of a checkpoint to train on (resume): an int8 one (rnn quantize) is refused."""
    if "quantized" in ckpt.meta:
        raise CheckpointError(
            f"{ckpt.path} is an int8 checkpoint (rnn quantize): it holds no optimizer state and cannot be "
            "resumed; resume from the float32 checkpoint it was made from",
            2,
        )
    try:
        model.load_state_dict(ckpt.weights)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}/model.safetensors: {e}") from None


def _damaged(ckpt: Checkpoint, e: Exception) -> CheckpointError:
    return CheckpointError(f"{ckpt.path}: damaged or mismatched checkpoint ({e})")


def load_text_side(ckpt: Checkpoint) -> tuple[Tokenizer, Vocab]:
    """The tokenizer and vocabulary a checkpoint was trained with."""
    try:
        return Tokenizer.from_dict(ckpt.meta["tokenizer"]), Vocab.from_dict(ckpt.vocab)
    except (KeyError, TypeError, ValueError) as e:
        raise _damaged(ckpt, e) from None


def load_model(path, which: str = "best") -> tuple[RNNModel, Tokenizer, Vocab, Checkpoint]:
    """Everything predict and score need, from the checkpoint alone: its forward (left-to-right) model.

    A checkpoint that holds only a backward model is refused (exit 2): it predicts the word before.
    """
    models = load_models(path, which)
    if models.forward is None:
        from .errors import UsageError

        raise UsageError(
            f"{models.ckpt.path} holds a backward (right-to-left) model, which predicts the word before, "
            "not the next one; use it with rnn fill or rnn eval, or train with model.direction: forward or both"
        )
    return models.forward, models.tokenizer, models.vocab, models.ckpt


def _network(ckpt: Checkpoint, vocab: Vocab, weights: dict) -> RNNModel:
    """One network of the shape the checkpoint's config gives, holding ``weights``."""
    try:
        model = RNNModel(ModelShape.from_config(_model_config(ckpt), len(vocab)))
    except (AttributeError, KeyError, TypeError, ValueError, ConfigError) as e:
        raise _damaged(ckpt, e) from None
    try:
        model.load_state_dict(weights)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}/model.safetensors: {e}") from None
    _check_output(model, ckpt)
    return model


def _model_config(ckpt: Checkpoint) -> ModelConfig:
    """The ``model`` section of the config a checkpoint holds; a key that an older version did not
    write takes config.py's default, and one that this version does not know is left out."""
    saved = ckpt.meta["config"]["model"]
    known = {f.name for f in fields(ModelConfig)}
    return ModelConfig(**{key: value for key, value in saved.items() if key in known})


def _check_output(model: RNNModel, ckpt: Checkpoint) -> None:
    """Refuse weights that are finite but so large that the model predicts NaN (as after a training
    that diverged without a non-finite step): every number it would print would be meaningless."""
    with np.errstate(all="ignore"):
        top, _, _ = model.hidden(np.ones((2, 1), dtype=np.int32), model.initial_state(1))  # (2, 1, H): <eos> <eos>
        out = model.log_probs(top[:, 0])
    if np.isnan(out).any():
        largest = max(float(np.abs(w).max()) for w in model.params.values())
        raise CheckpointError(
            f"{ckpt.path}: the model predicts NaN: its weights are too large (the largest is {largest:.3g}), "
            "as after a training that diverged; train it again with a lower train.lr"
        )


@dataclass(eq=False)  # networks: compared by identity
class Models:
    """The networks of one checkpoint: a forward (left-to-right) and/or a backward (right-to-left) model.

    A backward model reads token ids in reverse order: fed ``ids[::-1]`` it predicts, at each
    step, the word that comes *before* in the text.  Either may be None (``model.direction``).
    """

    forward: RNNModel | None
    backward: RNNModel | None
    tokenizer: Tokenizer
    vocab: Vocab
    ckpt: Checkpoint
    pieces: Pieces | None = None  # how words are spelled, for a word-piece model


def load_models(path, which: str = "best") -> Models:
    """Both directions of a checkpoint (``model.direction`` forward, backward or both).

    A backward network's tensors are named as a forward one's (``encoder.weight``, ...) in a
    ``backward`` checkpoint, and under ``backward.`` + those names beside the forward ones in a
    ``both`` checkpoint.  A ``.onnx`` file (``rnn export``) gives its one network, run by onnxruntime
    (``onnx_model``).
    """
    if str(path).endswith(".onnx") and Path(path).is_file():  # an `rnn export` file, run by onnxruntime
        from .onnx_model import load_onnx

        return load_onnx(path)
    ckpt = load_checkpoint(path, which)
    tokenizer, vocab = load_text_side(ckpt)
    pieces = _pieces(ckpt, vocab)
    weights = ckpt.weights
    if "quantized" in ckpt.meta:  # an int8 checkpoint (rnn quantize): the networks get q * scale, float32
        from .quantize import dequantize_weights

        weights = dequantize_weights(ckpt)
    direction = (ckpt.meta.get("config", {}).get("model", {}) or {}).get("direction", "forward")
    if direction == "forward":
        return Models(_network(ckpt, vocab, weights), None, tokenizer, vocab, ckpt, pieces)
    if direction == "backward":
        return Models(None, _network(ckpt, vocab, weights), tokenizer, vocab, ckpt, pieces)
    if direction != "both":
        raise _damaged(ckpt, ValueError(f"unknown model.direction {direction!r}"))
    forward, backward = split_weights(weights)
    if not backward:
        raise CheckpointError(f"{ckpt.path}/model.safetensors: the backward network's tensors (backward.*) are missing")
    return Models(_network(ckpt, vocab, forward), _network(ckpt, vocab, backward), tokenizer, vocab, ckpt, pieces)


def _pieces(ckpt: Checkpoint, vocab: Vocab):
    """The piece model of a word-piece checkpoint (``tokenizer.units: pieces``); None for words."""
    units = (ckpt.meta.get("config", {}).get("tokenizer", {}) or {}).get("units", "words")
    if units == "words":
        return None
    if units != "pieces":
        raise _damaged(ckpt, ValueError(f"unknown tokenizer.units {units!r}"))
    if ckpt.pieces is None:
        raise CheckpointError(f"{ckpt.path}/pieces.model: missing; the checkpoint is incomplete")
    from .pieces import load_pieces

    return load_pieces(ckpt.pieces, vocab, f"{ckpt.path}/pieces.model")


@dataclass
class EvalResult:
    tokens: int  # predicted tokens (units, for a word-piece model)
    nll: float  # summed negative log-likelihood, nats (of the words, for a word-piece model)
    top1: int  # targets that were the model's first choice
    top5: int  # targets among its five first choices
    oov: int  # targets that are <unk>
    words: int = 0  # predicted words of a word-piece model (0 for a word model: a token is a word)

    @property
    def per(self) -> int:
        """What the figures are per: words (every token is one for a word model)."""
        return self.words or self.tokens

    @property
    def loss(self) -> float:
        return self.nll / self.per if self.per else float("nan")

    @property
    def perplexity(self) -> float | None:
        return perplexity(self.nll, self.per)

    def as_dict(self) -> dict:
        t = max(self.per, 1)
        out = {
            "tokens": self.per,
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_word": self.loss / math.log(2),
            "top1": self.top1 / t,
            "top5": self.top5 / t,
            "oov_rate": self.oov / t,
        }
        if self.words:
            out["units"] = self.tokens
        return out


def evaluate(
    model: RNNModel,
    ids: np.ndarray,
    *,
    streams: int = 1,
    chunk_rows: int = 0,
    start_id: int | None = None,
    unk_id: int | None = None,
    rank: bool = True,
    part: tuple[int, int] | None = None,
    begins: np.ndarray | None = None,
) -> EvalResult:
    """Score a token stream with the hidden state carried through it; every token is scored.

    ``start_id`` (normally ``<eos>``) is put in front so that the first token is
    predicted too, as the first word of a sentence.  With ``streams > 1`` the
    targets are cut into that many consecutive pieces of equal length L, scored
    in parallel (faster); each piece starts from a zero state, reading the last
    token of the piece before it, and the last piece also scores the few targets
    that do not fill a row (so ``tokens`` is always the number of targets,
    whatever ``streams`` is).  ``part = (lo, hi)`` scores only pieces lo..hi-1 (a
    data-parallel worker's share); the shares' sums add up to the whole.

    ``begins`` ((V,) bool, a word-piece model's units that begin a word): the figures are per word,
    see ``_word_terms``; ``rank`` then counts nothing (whole-word ranks are ``word_ranks``').
    """
    if start_id is not None:
        ids = np.concatenate([np.array([start_id], dtype=ids.dtype), ids])
    targets = len(ids) - 1
    result = EvalResult(0, 0.0, 0, 0, 0)
    if targets < 1:
        return result
    streams = max(1, min(streams, targets))
    length = targets // streams  # targets per piece; the last piece also takes the remainder
    lo, hi = part or (0, streams)
    if hi <= lo:
        return result
    x = ids[: streams * length].reshape(streams, length)[lo:hi].T  # (L, pieces): piece j reads ids[jL ...]
    y = ids[1 : streams * length + 1].reshape(streams, length)[lo:hi].T  # and predicts the token after each
    # rows x vocabulary floats per chunk: about 64 MB (generate.WORK_FLOATS), large products, few Python steps
    chunk_rows = chunk_rows or block_rows(model)
    score = _Scoring(model, chunk_rows, result, rank and begins is None, unk_id, begins)
    state = score.rows(x, y, None)
    last = np.array([hi - lo - 1])
    if hi == streams and streams * length < targets:  # the remainder continues the last piece
        rest_x = ids[streams * length : targets].reshape(-1, 1)
        rest_y = ids[streams * length + 1 :].reshape(-1, 1)
        state, last = score.rows(rest_x, rest_y, _take(state, last)), np.array([0])
    if begins is not None and hi == streams:
        score.end_of_text(int(ids[-1]), _take(state, last))
    return result


def _take(state, rows):
    return [tuple(a[rows] for a in layer) for layer in state]


class _Scoring:
    """Adds the scores of target rows to an EvalResult, a chunk of ``chunk_rows`` at a time."""

    def __init__(self, model, chunk_rows: int, result: EvalResult, rank: bool, unk_id, begins):
        self.model, self.chunk_rows, self.result, self.rank, self.unk_id = model, chunk_rows, result, rank, unk_id
        self.begins = begins

    def rows(self, x, y, state):
        """Score targets y (T, B), read from inputs x; returns the final state.

        More pieces than a chunk holds (``--batch-size`` beyond the rows of a chunk) go through the
        text a group of pieces at a time."""
        model, chunk_rows = self.model, self.chunk_rows
        if state is None:
            state = model.initial_state(x.shape[1])
        if x.shape[1] > chunk_rows:
            groups = [slice(lo, lo + chunk_rows) for lo in range(0, x.shape[1], chunk_rows)]
            parts = [self.rows(x[:, g], y[:, g], _take(state, g)) for g in groups]
            return [tuple(np.concatenate(arrays) for arrays in zip(*layers)) for layers in zip(*parts)]
        window = max(1, chunk_rows // x.shape[1])
        result = self.result
        for i in range(0, len(x), window):
            top, state, _ = model.hidden(np.ascontiguousarray(x[i : i + window]), state)
            hidden = top.reshape(-1, model.shape.hidden_size)
            targets = np.ascontiguousarray(y[i : i + window]).reshape(-1)
            target_lp, rank_of = model.output.score(model.params, hidden, targets, self.unk_id)
            result.nll -= float(np.sum(target_lp))
            result.tokens += len(targets)
            if self.rank:
                result.top1 += int(np.sum(rank_of == 0))
                result.top5 += int(np.sum(rank_of < 5))
            if self.unk_id is not None:
                result.oov += int(np.sum(targets == self.unk_id))
            if self.begins is not None:
                self._word_terms(np.ascontiguousarray(x[i : i + window]).reshape(-1), targets, hidden)
        return state

    def _word_terms(self, inputs: np.ndarray, targets: np.ndarray, hidden: np.ndarray) -> None:
        """Per-word scores of a word-piece model (Pimentel & Meister 2024): a word's probability is
        its units' times the boundary after it (the next unit begins a word: a piece with the word
        mark, ``<eos>`` or ``<unk>``), divided by the boundary before it (that a word begins here,
        which the word before already counted).  Over a text the two cancel wherever a word follows
        a word, so only a word that follows ``<eos>`` or ``<unk>`` (complete units, after which a
        word must begin) or the start of the text adds a term: minus log P(a word begins)."""
        first = self.begins[targets]
        self.result.words += int(first.sum())
        fresh = np.flatnonzero(first & ((inputs == Vocab.eos_id) | (inputs == Vocab.unk_id)))
        if fresh.size:
            self.result.nll += float(np.sum(self._log_begin(hidden[fresh])))

    def _log_begin(self, hidden: np.ndarray) -> np.ndarray:
        """log P(the next unit begins a word) for rows of hidden states, (n,) float64."""
        from .wordsearch import log_begin

        return log_begin(self.model.output.log_probs(self.model.params, hidden).astype(np.float64), self.begins)

    def end_of_text(self, last: int, state) -> None:
        """The last word's boundary: that a word begins after it (unless it is <eos> or <unk>)."""
        if last in (Vocab.eos_id, Vocab.unk_id):
            return
        top, _, _ = self.model.hidden(np.array([[last]], dtype=np.int32), state)
        self.result.nll -= float(self._log_begin(top.reshape(-1, self.model.shape.hidden_size))[0])
