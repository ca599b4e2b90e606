"""Output layers: hidden states -> a normalised distribution over the vocabulary.

``FullSoftmax`` is one linear layer and a softmax over every word.  At a large
vocabulary it dominates the cost of a training step: three ``(N, H) x (H, V)``
matrix products and a few passes over an ``(N, V)`` array per window.

``AdaptiveSoftmax`` (Grave et al. 2017, "Efficient softmax approximation for
GPUs", as ``torch.nn.AdaptiveLogSoftmaxWithLoss`` computes it) splits the
frequency-ordered vocabulary at ``cutoffs``: the head is a softmax over the
``cutoffs[0]`` most frequent words plus one entry per tail cluster; tail
cluster i is a softmax over its words, computed from a projection of the hidden
state to ``H / div_value**(i+1)`` dimensions.  A word's log-probability is its
head entry, or its cluster's head entry plus its entry in that cluster, so the
probabilities stay exact and sum to one; a training step only evaluates a tail
for the rows whose target falls in it.

Both layers have the same interface: ``forward(params, hidden, targets)``
returns the mean loss and a cache, ``backward(params, cache)`` the gradient of
that loss for the hidden rows and for the layer's parameters, and
``log_probs(params, hidden)`` the full ``(N, V)`` log-distribution for inference.

The layers keep no arrays of their own, so one model may serve several threads at
once: inference allocates per call, and a cache owns its arrays unless the caller
hands ``forward`` a workspace (a dict) that it owns and reuses from window to
window (the training loop's: a fresh ``(N, V)`` array costs a page fault per
4 kB every window); such a cache is valid until the next forward given that
workspace.
Parameter names follow PyTorch: ``decoder.weight``/``decoder.bias`` for the full
layer (an ``nn.Linear``), ``decoder.head.weight``, ``decoder.head.bias``,
``decoder.tail.{i}.0.weight``, ``decoder.tail.{i}.1.weight`` for the adaptive one
(an ``nn.AdaptiveLogSoftmaxWithLoss`` with ``head_bias=True``, under ``decoder.``).
"""

from __future__ import annotations

import numpy as np

from .functional import cross_entropy_, log_softmax, rows_per_block, score_log_probs, score_targets_

SCORE_FLOATS = 1 << 22  # logits per slice of FullSoftmax.score: 16 MB of float32


class FullSoftmax:
    def __init__(self, vocab_size: int, hidden_size: int, tied: bool):
        self.V, self.H, self.tied = vocab_size, hidden_size, tied

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {} if self.tied else {"decoder.weight": (self.V, self.H)}
        shapes["decoder.bias"] = (self.V,)
        return shapes

    def weight(self, params):
        return params["encoder.weight" if self.tied else "decoder.weight"]

    def logits(self, params, hidden: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N, H) -> (N, V) logits."""
        out = np.matmul(hidden, self.weight(params).T, out=out)
        out += params["decoder.bias"]
        return out

    def log_probs(self, params, hidden: np.ndarray) -> np.ndarray:
        return log_softmax(self.logits(params, hidden))

    def score(
        self, params, hidden: np.ndarray, targets: np.ndarray, skip: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each target's log-probability (N,) and rank (N,), in one fused pass (ranks and ``skip``:
        functional.score_targets_).

        The logits go through an array of this call's own, a slice of rows at a time: at most
        SCORE_FLOATS, which the allocator hands back from call to call without page faults (a
        fresh 64 MB one costs 13% of the call), a whole number of ``score_targets_``'s blocks so
        the answers are those of one slice.
        """
        N, W_T = hidden.shape[0], self.weight(params).T
        block = rows_per_block(self.V)
        rows = max(1, min(N, max(block, SCORE_FLOATS // self.V // block * block)))
        logits = np.empty((rows, self.V), dtype=hidden.dtype)  # (rows, V), bias added by score_targets_
        log_p, rank = np.empty(N, dtype=np.float64), np.empty(N, dtype=np.int64)
        for lo in range(0, N, rows):
            hi = min(lo + rows, N)
            part = np.matmul(hidden[lo:hi], W_T, out=logits[: hi - lo])
            log_p[lo:hi], rank[lo:hi] = score_targets_(part, targets[lo:hi], params["decoder.bias"], skip)
        return log_p, rank

    def target_log_probs(self, params, hidden: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each target's log-probability (N,) float64 (the fused pass of ``score``)."""
        return self.score(params, hidden, targets)[0]

    def forward(self, params, hidden: np.ndarray, targets: np.ndarray, workspace: dict | None = None):
        """Mean cross-entropy of targets (N,) given hidden (N, H); the cache holds d(loss)/d(logits).

        The logits, then their gradient, go into a new (N, V) array, or into this layer's array in
        ``workspace`` (see the module's docstring): that cache is valid until the next such call.
        """
        out = None if workspace is None else _scratch(workspace, self, (hidden.shape[0], self.V), hidden.dtype)
        logits = np.matmul(hidden, self.weight(params).T, out=out)  # (N, V), bias added below
        loss, dlogits, dbias = cross_entropy_(logits, targets, params["decoder.bias"])
        return loss, (hidden, dlogits, dbias)

    def backward(self, params, cache):
        hidden, dlogits, dbias = cache
        W = self.weight(params)
        grads = {"decoder.bias": dbias}
        dW = dlogits.T @ hidden  # (V, H)
        grads["encoder.weight" if self.tied else "decoder.weight"] = dW
        return dlogits @ W, grads  # (N, H)


def _scratch(workspace: dict, owner, shape: tuple[int, ...], dtype) -> np.ndarray:
    """owner's array in workspace, made (again) when it is missing or of another shape or dtype."""
    buf = workspace.get(owner)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = workspace[owner] = np.empty(shape, dtype=dtype)
    return buf


class AdaptiveSoftmax:
    def __init__(self, vocab_size: int, hidden_size: int, cutoffs, div_value: float):
        cutoffs = [c for c in cutoffs if c < vocab_size]
        if not cutoffs:
            raise ValueError(f"model.cutoffs: every cutoff is >= the vocabulary size {vocab_size}")
        self.V, self.H = vocab_size, hidden_size
        self.bounds = list(cutoffs) + [vocab_size]  # cluster i holds ids bounds[i] .. bounds[i+1]-1
        self.shortlist = cutoffs[0]
        self.n_clusters = len(cutoffs)
        self.proj = [max(1, int(hidden_size // (div_value ** (i + 1)))) for i in range(self.n_clusters)]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        head = self.shortlist + self.n_clusters
        shapes: dict[str, tuple[int, ...]] = {"decoder.head.weight": (head, self.H), "decoder.head.bias": (head,)}
        for i in range(self.n_clusters):
            size = self.bounds[i + 1] - self.bounds[i]
            shapes[f"decoder.tail.{i}.0.weight"] = (self.proj[i], self.H)
            shapes[f"decoder.tail.{i}.1.weight"] = (size, self.proj[i])
        return shapes

    def _head_logits(self, params, hidden):
        out = hidden @ params["decoder.head.weight"].T  # (N, shortlist + clusters)
        out += params["decoder.head.bias"]
        return out

    def log_probs(self, params, hidden: np.ndarray) -> np.ndarray:
        N = hidden.shape[0]
        out = np.empty((N, self.V), dtype=hidden.dtype)
        head = log_softmax(self._head_logits(params, hidden))
        out[:, : self.shortlist] = head[:, : self.shortlist]
        for i in range(self.n_clusters):
            lo, hi = self.bounds[i], self.bounds[i + 1]
            z = hidden @ params[f"decoder.tail.{i}.0.weight"].T  # (N, p_i)
            out[:, lo:hi] = log_softmax(z @ params[f"decoder.tail.{i}.1.weight"].T)
            out[:, lo:hi] += head[:, self.shortlist + i, None]
        return out

    def score(
        self, params, hidden: np.ndarray, targets: np.ndarray, skip: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each target's log-probability (N,) and rank (N,) among all V words (functional.score_targets_'s)."""
        return score_log_probs(self.log_probs(params, hidden), targets, skip)

    def target_log_probs(self, params, hidden: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Each target's log-probability (N,) float64, as ``log_probs`` gives it, but each tail is
        evaluated only for the rows whose target lies in it (no (N, V) array)."""
        rows_all = np.arange(len(targets))
        cluster = np.searchsorted(self.bounds, targets, side="right") - 1  # (N,) tail index, -1 = head
        head = log_softmax(self._head_logits(params, hidden))  # (N, shortlist + clusters)
        out = head[rows_all, np.where(cluster < 0, targets, self.shortlist + cluster)].astype(np.float64)
        for i in range(self.n_clusters):
            rows = np.flatnonzero(cluster == i)
            if rows.size == 0:
                continue
            z = hidden[rows] @ params[f"decoder.tail.{i}.0.weight"].T  # (n_i, p_i)
            tail = log_softmax(z @ params[f"decoder.tail.{i}.1.weight"].T)  # (n_i, size_i)
            out[rows] += tail[np.arange(rows.size), targets[rows] - self.bounds[i]]
        return out

    def forward(self, params, hidden: np.ndarray, targets: np.ndarray, workspace: dict | None = None):
        """As FullSoftmax.forward; every array is this call's own (``workspace`` is not used: no array
        here is (N, V), and a tail's rows change from window to window)."""
        N = hidden.shape[0]
        cluster = np.searchsorted(self.bounds, targets, side="right") - 1  # (N,) tail index, -1 = head
        head_targets = np.where(cluster < 0, targets, self.shortlist + cluster)
        head_logits = hidden @ params["decoder.head.weight"].T  # (N, shortlist + clusters)
        loss_head, dhead, dhead_bias = cross_entropy_(head_logits, head_targets, params["decoder.head.bias"])
        loss = loss_head
        tails = []
        for i in range(self.n_clusters):
            rows = np.flatnonzero(cluster == i)
            if rows.size == 0:
                tails.append(None)
                continue
            h = hidden[rows]  # (n_i, H)
            z = h @ params[f"decoder.tail.{i}.0.weight"].T  # (n_i, p_i)
            logits = z @ params[f"decoder.tail.{i}.1.weight"].T  # (n_i, size_i)
            loss_i, dlogits, _ = cross_entropy_(logits, targets[rows] - self.bounds[i])
            # cross_entropy_ averages over the n_i rows; the loss averages over all N rows
            scale = rows.size / N
            loss += loss_i * scale
            dlogits *= scale
            tails.append((rows, h, z, dlogits))
        return loss, (hidden, dhead, dhead_bias, tails)

    def backward(self, params, cache):
        hidden, dhead, dhead_bias, tails = cache
        grads = {"decoder.head.weight": dhead.T @ hidden, "decoder.head.bias": dhead_bias}
        dhidden = dhead @ params["decoder.head.weight"]  # (N, H)
        for i, tail in enumerate(tails):
            W0 = params[f"decoder.tail.{i}.0.weight"]
            W1 = params[f"decoder.tail.{i}.1.weight"]
            if tail is None:
                grads[f"decoder.tail.{i}.0.weight"] = np.zeros_like(W0)
                grads[f"decoder.tail.{i}.1.weight"] = np.zeros_like(W1)
                continue
            rows, h, z, dlogits = tail
            grads[f"decoder.tail.{i}.1.weight"] = dlogits.T @ z  # (size_i, p_i)
            dz = dlogits @ W1  # (n_i, p_i)
            grads[f"decoder.tail.{i}.0.weight"] = dz.T @ h  # (p_i, H)
            dhidden[rows] += dz @ W0  # rows are distinct, so fancy-index += is exact
        return dhidden, grads
