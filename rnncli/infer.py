"""Using a trained model: score text (perplexity, top-k accuracy), next-word top-k, sampling.

No backward bookkeeping here: only the forward pass, over large chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .data import batchify
from .errors import CheckpointError
from .model import ModelShape, RNNModel
from .tokenizer import Tokenizer, Vocab


def load_weights(model: RNNModel, ckpt: Checkpoint) -> None:
    try:
        model.load_state_dict(ckpt.weights)
    except ValueError as e:
        raise CheckpointError(f"{ckpt.path}/model.safetensors: {e}") from None


def load_model(path, which: str = "best") -> tuple[RNNModel, Tokenizer, Vocab, Checkpoint]:
    """Everything predict and eval need, from the checkpoint alone."""
    ckpt = load_checkpoint(path, which)
    try:
        vocab = Vocab.from_dict(ckpt.vocab)
        tokenizer = Tokenizer.from_dict(ckpt.meta["tokenizer"])
        m = ckpt.meta["config"]["model"]
        shape = ModelShape(
            vocab_size=len(vocab),
            cell=m["cell"],
            embedding_size=int(m["embedding_size"]),
            hidden_size=int(m["hidden_size"]),
            layers=int(m["layers"]),
            dropout=float(m["dropout"]),
            tie_weights=bool(m["tie_weights"]),
            softmax=m.get("softmax", "full"),
            cutoffs=tuple(m.get("cutoffs", (2000, 10000))),
            div_value=float(m.get("div_value", 4.0)),
        )
        model = RNNModel(shape)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path}: damaged or mismatched checkpoint ({e})") from None
    load_weights(model, ckpt)
    return model, tokenizer, vocab, ckpt


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
    def perplexity(self) -> float:
        loss = self.loss
        return math.exp(loss) if loss < 700 else float("inf")

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
    chunk_rows: int = 4096,
    start_id: int | None = None,
    unk_id: int | None = None,
    rank: bool = True,
) -> EvalResult:
    """Score a token stream with the hidden state carried through it.

    ``start_id`` (normally ``<eos>``) is put in front so that the first token is
    predicted too, as the first word of a sentence.  With ``streams > 1`` the
    text is cut into that many parallel pieces (faster, each piece starting
    from a zero state, and the few tokens that do not fit dropped).
    """
    if start_id is not None:
        ids = np.concatenate([np.array([start_id], dtype=ids.dtype), ids])
    if len(ids) < 2:
        return EvalResult(0, 0.0, 0, 0, 0)
    streams = max(1, min(streams, len(ids) // 2))
    data = batchify(ids, streams)  # (rows, streams)
    window = max(1, chunk_rows // streams)
    state = model.initial_state(streams)
    result = EvalResult(0, 0.0, 0, 0, 0)
    for i in range(0, len(data) - 1, window):
        x = data[i : i + window]
        y = data[i + 1 : i + 1 + window]
        x = x[: len(y)]
        top, state, _ = model.hidden(x, state)
        logits = model.logits(top.reshape(-1, model.shape.hidden_size))  # (N, V)
        targets = y.reshape(-1)
        rows = np.arange(len(targets))
        target_logit = logits[rows, targets][:, None]  # (N, 1)
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0].astype(np.float64) + np.log(np.exp(logits - m).sum(axis=1, dtype=np.float64))
        result.nll += float(np.sum(lse - target_logit[:, 0]))
        result.tokens += len(targets)
        if rank:
            better = (logits > target_logit).sum(axis=1)  # how many words outrank the target
            result.top1 += int(np.sum(better == 0))
            result.top5 += int(np.sum(better < 5))
        if unk_id is not None:
            result.oov += int(np.sum(targets == unk_id))
    return result


def next_word_probs(model: RNNModel, sequences: list[np.ndarray]) -> np.ndarray:
    """Next-token distribution after each id sequence: list of (T_i,) -> (n, V) float64.

    Sequences of equal length run together as one minibatch.
    """
    V = model.shape.vocab_size
    out = np.empty((len(sequences), V), dtype=np.float64)
    by_len: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        by_len.setdefault(len(seq), []).append(i)
    for idx in by_len.values():
        batch = np.stack([sequences[i] for i in idx], axis=1)  # (T, B)
        top, _, _ = model.hidden(batch, model.initial_state(len(idx)))
        logits = model.logits(top[-1]).astype(np.float64)  # (B, V)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        out[idx] = logits
    return out


def top_k(probs: np.ndarray, k: int, exclude: tuple[int, ...] = ()) -> list[tuple[int, float]]:
    """The k most probable ids of a (V,) distribution, best first, skipping ``exclude``."""
    p = probs.copy()
    if exclude:
        p[list(exclude)] = -1.0
    k = min(k, len(p) - len(exclude))
    if k <= 0:
        return []
    idx = np.argpartition(-p, k - 1)[:k]
    idx = idx[np.lexsort((idx, -p[idx]))]  # by probability, ties by id: deterministic
    return [(int(i), float(p[i])) for i in idx]


def sample_continuation(
    model: RNNModel,
    context: np.ndarray,
    n: int,
    *,
    rng: np.random.Generator,
    temperature: float = 1.0,
    exclude: tuple[int, ...] = (),
    stop_id: int | None = None,
) -> list[int]:
    """Sample n ids after ``context`` (T,), feeding each sampled id back in.

    ``temperature`` 0 is greedy.  Ids in ``exclude`` are never drawn.  Stops
    early after drawing ``stop_id`` when it is given.
    """
    top, state, _ = model.hidden(context[:, None], model.initial_state(1))
    h = top[-1]  # (1, H)
    out: list[int] = []
    for _ in range(n):
        logits = model.logits(h)[0].astype(np.float64)  # (V,)
        if exclude:
            logits[list(exclude)] = -np.inf
        if temperature <= 0:
            nxt = int(np.argmax(logits))
        else:
            logits /= temperature
            logits -= logits.max()
            p = np.exp(logits)
            p /= p.sum()
            nxt = int(rng.choice(len(p), p=p))
        out.append(nxt)
        if stop_id is not None and nxt == stop_id:
            break
        top, state, _ = model.hidden(np.array([[nxt]]), state)
        h = top[-1]
    return out
