"""Using a trained model: load it from a checkpoint, score text (perplexity, top-k accuracy).

No backward bookkeeping here: only the forward pass, over large chunks.  Next-word
top-k, sampling, beam search and per-line scores live in `generate` (re-exported here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .generate import block_rows, next_word_probs, sample_continuation, top_k
from .metrics import perplexity
from .model import ModelShape, RNNModel
from .tokenizer import Tokenizer, Vocab
from .twoway import split_weights

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


@dataclass
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


def load_models(path, which: str = "best") -> Models:
    """Both directions of a checkpoint (``model.direction`` forward, backward or both).

    A backward network's tensors are named as a forward one's (``encoder.weight``, ...) in a
    ``backward`` checkpoint, and under ``backward.`` + those names beside the forward ones in a
    ``both`` checkpoint.
    """
    ckpt = load_checkpoint(path, which)
    tokenizer, vocab = load_text_side(ckpt)
    direction = (ckpt.meta.get("config", {}).get("model", {}) or {}).get("direction", "forward")
    if direction == "forward":
        return Models(_network(ckpt, vocab, ckpt.weights), None, tokenizer, vocab, ckpt)
    if direction == "backward":
        return Models(None, _network(ckpt, vocab, ckpt.weights), tokenizer, vocab, ckpt)
    if direction != "both":
        raise _damaged(ckpt, ValueError(f"unknown model.direction {direction!r}"))
    forward, backward = split_weights(ckpt.weights)
    if not backward:
        raise CheckpointError(f"{ckpt.path}/model.safetensors: the backward network's tensors (backward.*) are missing")
    return Models(_network(ckpt, vocab, forward), _network(ckpt, vocab, backward), tokenizer, vocab, ckpt)


@dataclass
class EvalResult:
    tokens: int  # predicted tokens
    nll: float  # summed negative log-likelihood, nats
    top1: int  # targets that were the model's first choice
    top5: int  # targets among its five first choices
    oov: int  # targets that are <unk>

    @property
    def loss(self) -> float:
        return self.nll / self.tokens if self.tokens else float("nan")

    @property
    def perplexity(self) -> float | None:
        return perplexity(self.nll, self.tokens)

    def as_dict(self) -> dict:
        t = max(self.tokens, 1)
        return {
            "tokens": self.tokens,
            "loss": self.loss,
            "perplexity": self.perplexity,
            "bits_per_word": self.loss / math.log(2),
            "top1": self.top1 / t,
            "top5": self.top5 / t,
            "oov_rate": self.oov / t,
        }


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
    state = _score_rows(model, x, y, None, chunk_rows, result, rank, unk_id)
    if hi == streams and streams * length < targets:  # the remainder continues the last piece
        last = np.array([hi - lo - 1])
        state = _take(state, last)
        rest_x = ids[streams * length : targets].reshape(-1, 1)
        rest_y = ids[streams * length + 1 :].reshape(-1, 1)
        _score_rows(model, rest_x, rest_y, state, chunk_rows, result, rank, unk_id)
    return result


def _take(state, rows):
    return [tuple(a[rows] for a in layer) for layer in state]


def _score_rows(model, x, y, state, chunk_rows, result, rank, unk_id):
    """Add the scores of targets y (T, B), read from inputs x, to result; returns the final state.

    Each call scores ``chunk_rows`` (steps x pieces) at most: more pieces than that (``--batch-size``
    beyond the rows of a chunk) go through the text a group of pieces at a time."""
    if state is None:
        state = model.initial_state(x.shape[1])
    if x.shape[1] > chunk_rows:
        groups = [slice(lo, lo + chunk_rows) for lo in range(0, x.shape[1], chunk_rows)]
        parts = [
            _score_rows(model, x[:, g], y[:, g], _take(state, g), chunk_rows, result, rank, unk_id) for g in groups
        ]
        return [tuple(np.concatenate(arrays) for arrays in zip(*layers)) for layers in zip(*parts)]
    window = max(1, chunk_rows // x.shape[1])
    for i in range(0, len(x), window):
        top, state, _ = model.hidden(np.ascontiguousarray(x[i : i + window]), state)
        targets = np.ascontiguousarray(y[i : i + window]).reshape(-1)
        target_lp, rank_of = model.output.score(model.params, top.reshape(-1, model.shape.hidden_size), targets)
        result.nll -= float(np.sum(target_lp))
        result.tokens += len(targets)
        if rank:
            result.top1 += int(np.sum(rank_of == 0))
            result.top5 += int(np.sum(rank_of < 5))
        if unk_id is not None:
            result.oov += int(np.sum(targets == unk_id))
    return state
