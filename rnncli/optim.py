"""Optimisers (SGD, Adam) and gradient-norm clipping, updating parameter arrays in place.

Optimiser state is a flat dict of arrays plus a step counter, so a checkpoint
can store it as tensors and JSON and a resumed run continues bit for bit.
"""

from __future__ import annotations

import numpy as np


class RowGrad:
    """The gradient of a matrix that is zero except in some rows (an embedding's, for one window).

    ``indices`` are distinct row numbers, ``values`` the gradient of those rows.
    SGD updates just those rows; clipping scales just those values.  At a
    33,000-word vocabulary this saves several passes over a 100 MB matrix per step.
    """

    def __init__(self, indices: np.ndarray, values: np.ndarray, shape: tuple[int, ...]):
        self.indices, self.values, self.shape = indices, values, shape

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=self.values.dtype)
        out[self.indices] = self.values
        return out

    def __imul__(self, scale):
        self.values *= scale
        return self


def dense(g) -> np.ndarray:
    """A gradient as a plain array, whether it is one already or a RowGrad."""
    return g.dense() if isinstance(g, RowGrad) else g


def _values(g) -> np.ndarray:
    return g.values if isinstance(g, RowGrad) else g


def clip_grad_norm_(grads: dict, max_norm: float, scale: float = 1.0) -> float:
    """Scale all gradients together so their global L2 norm is at most max_norm.

    ``scale`` multiplies the gradients first (1/K on a sum of K data-parallel workers'
    gradients), in the same pass over them as the clipping.  Returns the norm of the scaled
    gradients before clipping (float64; non-finite if any gradient is).  ``max_norm <= 0``
    only measures (and scales).
    """
    total = float(np.sqrt(sum(float(np.vdot(_values(g), _values(g))) for g in grads.values()))) * scale
    factor = scale
    if max_norm > 0 and total > max_norm:
        factor = scale * (max_norm / (total + 1e-6))
    if factor != 1.0:
        for g in grads.values():
            g *= factor
    return total


class SGD:
    """Plain stochastic gradient descent, with optional L2 weight decay."""

    name = "sgd"

    def __init__(self, lr: float, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.steps += 1
        for name, g in grads.items():
            p = params[name]
            if isinstance(g, RowGrad) and not self.weight_decay:
                p[g.indices] -= self.lr * g.values  # indices are distinct: an exact row update
                continue
            g = dense(g)
            if self.weight_decay:
                g += self.weight_decay * p
            g *= -self.lr  # the gradient is ours to overwrite: no temporary of the parameter's size
            p += g

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, as torch.optim.Adam computes it."""

    name = "adam"

    def __init__(self, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr = lr
        self.weight_decay = weight_decay
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.steps += 1
        b1, b2 = self.beta1, self.beta2
        bc1 = 1.0 - b1**self.steps
        bc2 = 1.0 - b2**self.steps
        for name, g in grads.items():
            p = params[name]
            g = dense(g)  # Adam's moments decay in every row, touched or not
            if self.weight_decay:
                g += self.weight_decay * p
            if name not in self.m:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v / bc2)
            denom += self.eps
            p -= p.dtype.type(self.lr / bc1) * (m / denom)

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {f"m.{k}": a for k, a in self.m.items()}
        out.update({f"v.{k}": a for k, a in self.v.items()})
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.m = {k[2:]: a.copy() for k, a in arrays.items() if k.startswith("m.")}
        self.v = {k[2:]: a.copy() for k, a in arrays.items() if k.startswith("v.")}


def make_optimizer(name: str, lr: float, weight_decay: float = 0.0):
    if name == "sgd":
        return SGD(lr, weight_decay)
    if name == "adam":
        return Adam(lr, weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")
