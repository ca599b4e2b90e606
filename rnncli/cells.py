"""Recurrent cells (Elman RNN, LSTM, GRU): forward over a window and its BPTT backward.

Each cell is a pair of functions over a whole window of T time steps and B
parallel streams, with PyTorch's equations, gate order and parameter layout
(``weight_ih`` is ``(G*H, I)``, ``weight_hh`` is ``(G*H, H)``, both biases
``(G*H,)``; G = 1, 4 (i, f, g, o) or 3 (r, z, n)), so weights move between
this code and ``torch.nn.RNN/LSTM/GRU`` unchanged.

The same weights serve every time step.  The input projection of the whole
window is one matrix product ``(T*B, I) @ (I, G*H)`` before the loop; only the
recurrent product ``h_{t-1} @ W_hh^T`` has to wait for the previous step.  The
backward pass walks the steps in reverse, carrying ``dh_next`` (and ``dc_next``)
back through time, and collects the per-step pre-activation gradients so that
the weight gradients, summed over all steps, are again single matrix products.

Signature of every pair::

    out, state, cache = forward(W_ih, W_hh, b_ih, b_hh, x, state)
    dx, dstate, (dW_ih, dW_hh, db_ih, db_hh) = backward(W_ih, W_hh, cache, dout, dstate)

with ``x (T, B, I)``, ``out (T, B, H)`` and ``state`` a tuple: ``(h,)`` for RNN and
GRU, ``(h, c)`` for LSTM, each ``(B, H)``.  The cache is a plain tuple of arrays
passed back by the caller; the cells keep no state of their own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .functional import sigmoid

# --------------------------------------------------------------------------- RNN
# h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)


def rnn_forward(W_ih, W_hh, b_ih, b_hh, x, state):
    T, B, I = x.shape
    H = W_hh.shape[0]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # hs[0] = h_0, hs[t+1] = h_t
    hs[0] = state[0]
    a = (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, H)  # (T, B, H) input part
    a += b_ih
    a += b_hh
    W_hhT = np.ascontiguousarray(W_hh.T)  # (H, G*H): a contiguous copy makes the T small products faster
    for t in range(T):
        h = hs[t + 1]
        np.matmul(hs[t], W_hhT, out=h)  # (B, H)
        h += a[t]
        np.tanh(h, out=h)
    return hs[1:], (hs[T].copy(),), (x, hs)


def rnn_backward(W_ih, W_hh, cache, dout, dstate):
    x, hs = cache
    T, B, I = x.shape
    H = W_hh.shape[0]
    da = np.empty((T, B, H), dtype=x.dtype)  # (T, B, H) grad of pre-activations
    dh_next = dstate[0].copy()  # (B, H) grad flowing into h_t from step t+1
    for t in range(T - 1, -1, -1):
        dh_next += dout[t]
        d = da[t]
        np.multiply(hs[t + 1], hs[t + 1], out=d)
        np.subtract(1.0, d, out=d)
        d *= dh_next  # tanh' = 1 - h^2
        dh_next = d @ W_hh  # (B, H)
    da2 = da.reshape(T * B, H)
    dW_hh = da2.T @ hs[:-1].reshape(T * B, H)  # summed over all steps at once
    dW_ih = da2.T @ x.reshape(T * B, I)
    db = da2.sum(axis=0)
    dx = (da2 @ W_ih).reshape(T, B, I)
    return dx, (dh_next,), (dW_ih, dW_hh, db, db.copy())


# -------------------------------------------------------------------------- LSTM
# gates = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, split as i, f, g, o
# c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g);  h_t = sigmoid(o) * tanh(c_t)


def lstm_forward(W_ih, W_hh, b_ih, b_hh, x, state):
    T, B, I = x.shape
    H = W_hh.shape[1]
    gates = (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, 4 * H)  # (T, B, 4H)
    gates += b_ih
    gates += b_hh
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # hs[t+1] = h_t
    cs = np.empty((T + 1, B, H), dtype=x.dtype)  # cs[t+1] = c_t
    tanh_c = np.empty((T, B, H), dtype=x.dtype)  # tanh(c_t), reused by backward
    hs[0], cs[0] = state
    # sigmoid(z) = 0.5 + 0.5 * tanh(z / 2).  Halving the i, f, o pre-activations (exact in floating
    # point, weights included) lets one tanh over all four gates and one multiply-add serve every
    # gate: a third of the element-wise calls per step, with the same bits as the gate-by-gate form.
    scale = np.full(4 * H, 0.5, dtype=x.dtype)
    scale[2 * H : 3 * H] = 1.0
    offset = np.full(4 * H, 0.5, dtype=x.dtype)
    offset[2 * H : 3 * H] = 0.0
    gates *= scale
    # (H, 4H) in C order: the T small products below run ~1.7x faster on it than on W_hh.T's layout,
    # which ``W_hh.T * scale`` would keep (numpy gives an element-wise result its input's order)
    W_hhT = np.empty((H, 4 * H), dtype=x.dtype)
    np.multiply(W_hh.T, scale, out=W_hhT)
    rec = np.empty((B, 4 * H), dtype=x.dtype)  # (B, 4H) recurrent part, reused
    ig = np.empty((B, H), dtype=x.dtype)
    for t in range(T):
        g = gates[t]
        np.matmul(hs[t], W_hhT, out=rec)
        g += rec
        np.tanh(g, out=g)
        g *= scale
        g += offset  # g now holds sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        c = cs[t + 1]
        np.multiply(g[:, H : 2 * H], cs[t], out=c)
        np.multiply(g[:, :H], g[:, 2 * H : 3 * H], out=ig)
        c += ig
        np.tanh(c, out=tanh_c[t])
        np.multiply(g[:, 3 * H :], tanh_c[t], out=hs[t + 1])
    state = (hs[T].copy(), cs[T].copy())
    return hs[1:], state, (x, hs, cs, gates, tanh_c)


def lstm_backward(W_ih, W_hh, cache, dout, dstate):
    x, hs, cs, gates, tanh_c = cache
    T, B, I = x.shape
    H = W_hh.shape[1]
    dgates = np.empty((T, B, 4 * H), dtype=x.dtype)  # (T, B, 4H) pre-activation grads
    dh_next = dstate[0].copy()  # (B, H)
    dc_next = dstate[1].copy()  # (B, H)
    for t in range(T - 1, -1, -1):
        dh_next += dout[t]
        g = gates[t]
        i, f, gg, o = g[:, :H], g[:, H : 2 * H], g[:, 2 * H : 3 * H], g[:, 3 * H :]
        tc = tanh_c[t]
        dg = dgates[t]
        # dc_t = dc_next + dh * o * (1 - tanh(c)^2)
        dc_next += dh_next * o * (1.0 - tc * tc)
        dg[:, :H] = dc_next * gg * i * (1.0 - i)
        dg[:, H : 2 * H] = dc_next * cs[t] * f * (1.0 - f)
        dg[:, 2 * H : 3 * H] = dc_next * i * (1.0 - gg * gg)
        dg[:, 3 * H :] = dh_next * tc * o * (1.0 - o)
        dc_next *= f
        dh_next = dg @ W_hh  # (B, H)
    dg2 = dgates.reshape(T * B, 4 * H)
    dW_hh = dg2.T @ hs[:-1].reshape(T * B, H)
    dW_ih = dg2.T @ x.reshape(T * B, I)
    db = dg2.sum(axis=0)
    dx = (dg2 @ W_ih).reshape(T, B, I)
    return dx, (dh_next, dc_next), (dW_ih, dW_hh, db, db.copy())


# --------------------------------------------------------------------------- GRU
# r = sigmoid(W_ir x + b_ir + W_hr h + b_hr);  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
# n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h_t = (1 - z) * n + z * h_{t-1}


def gru_forward(W_ih, W_hh, b_ih, b_hh, x, state):
    T, B, I = x.shape
    H = W_hh.shape[1]
    xg = (x.reshape(T * B, I) @ W_ih.T).reshape(T, B, 3 * H)  # (T, B, 3H) input part
    xg += b_ih
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = state[0]
    rz = np.empty((T, B, 2 * H), dtype=x.dtype)  # activated r, z
    n = np.empty((T, B, H), dtype=x.dtype)  # activated n
    hn = np.empty((T, B, H), dtype=x.dtype)  # W_hn h + b_hn, needed for dr
    hg = np.empty((B, 3 * H), dtype=x.dtype)  # (B, 3H) recurrent part, reused
    W_hhT = np.ascontiguousarray(W_hh.T)  # (H, G*H): a contiguous copy makes the T small products faster
    for t in range(T):
        np.matmul(hs[t], W_hhT, out=hg)
        hg += b_hh
        np.add(xg[t, :, : 2 * H], hg[:, : 2 * H], out=rz[t])
        sigmoid(rz[t], out=rz[t])
        hn[t] = hg[:, 2 * H :]
        np.multiply(rz[t, :, :H], hn[t], out=n[t])
        n[t] += xg[t, :, 2 * H :]
        np.tanh(n[t], out=n[t])
        h = hs[t + 1]
        np.subtract(hs[t], n[t], out=h)
        h *= rz[t, :, H:]
        h += n[t]
    return hs[1:], (hs[T].copy(),), (x, hs, rz, n, hn)


def gru_backward(W_ih, W_hh, cache, dout, dstate):
    x, hs, rz, n, hn = cache
    T, B, I = x.shape
    H = W_hh.shape[1]
    dxg = np.empty((T, B, 3 * H), dtype=x.dtype)  # grads of the input-side pre-activations
    dhg = np.empty((T, B, 3 * H), dtype=x.dtype)  # grads of the hidden-side ones
    dh_next = dstate[0].copy()
    for t in range(T - 1, -1, -1):
        dh_next += dout[t]
        r, z, nt = rz[t, :, :H], rz[t, :, H:], n[t]
        dan = dh_next * (1.0 - z) * (1.0 - nt * nt)  # grad of n's pre-activation
        dar = dan * hn[t] * r * (1.0 - r)
        daz = dh_next * (hs[t] - nt) * z * (1.0 - z)
        dxg[t, :, :H] = dar
        dxg[t, :, H : 2 * H] = daz
        dxg[t, :, 2 * H :] = dan
        dhg[t, :, : 2 * H] = dxg[t, :, : 2 * H]
        np.multiply(dan, r, out=dhg[t, :, 2 * H :])
        dh_next = dh_next * z + dhg[t] @ W_hh
    dxg2 = dxg.reshape(T * B, 3 * H)
    dhg2 = dhg.reshape(T * B, 3 * H)
    dW_ih = dxg2.T @ x.reshape(T * B, I)
    dW_hh = dhg2.T @ hs[:-1].reshape(T * B, H)
    dx = (dxg2 @ W_ih).reshape(T, B, I)
    return dx, (dh_next,), (dW_ih, dW_hh, dxg2.sum(axis=0), dhg2.sum(axis=0))


class CellKind:
    """What the model needs to know of a cell type: gate count, state arity, the two passes."""

    def __init__(self, name: str, gates: int, state_size: int, forward: Callable, backward: Callable):
        self.name = name
        self.gates = gates
        self.state_size = state_size
        self.forward = forward
        self.backward = backward


CELLS: dict[str, CellKind] = {
    "rnn": CellKind("rnn", 1, 1, rnn_forward, rnn_backward),
    "lstm": CellKind("lstm", 4, 2, lstm_forward, lstm_backward),
    "gru": CellKind("gru", 3, 1, gru_forward, gru_backward),
}
