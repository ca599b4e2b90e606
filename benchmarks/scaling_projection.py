"""Projected data-parallel throughput on K hosts, from a measured step time and the exact bytes reduced.

    python benchmarks/scaling_projection.py              # measures here, prints the tables of docs/scaling.md
    python benchmarks/scaling_projection.py --windows 5  # quicker, noisier

Measured on this machine (one process, every core a BLAS thread, ``train.Trainer.step``):
the compute time of one window of batch 20, bptt 35, and the number of distinct words a
window holds (the embedding rows a worker contributes).  Counted exactly from the model's
shapes: the bytes of dense gradient every step reduces.  Projected, for K hosts like this
one joined by a 10 or 100 Gb/s network, with a ring allreduce

    t_allreduce = 2 (K-1)/K * bytes / bandwidth + 2 (K-1) * latency
    t_allgather = (K-1)/K * K * rows * (4 E + 8) / bandwidth + (K-1) * latency
                  (or a ring allreduce of the whole V x E embedding gradient, when
                   K * rows * (4 E + 8) > 2 * 4 V E: the switch comm.py makes)

and no overlap of communication with computation (the conservative case):

    step = t_compute(b) + t_allreduce + t_allgather,   tokens/s = K * b * bptt / step,
    efficiency = t_compute(b) / step

where t_compute(b) = t_compute(20) * b / 20 assumes the step's cost is proportional to the
streams per worker (optimistic for small b, where matrix products run less efficiently).
The last column is the smallest batch per worker b with efficiency >= 90% at K = 64.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

MODELS = {
    # label: (cell, layers, hidden, vocab)
    "RNN 1x200, V=10k": ("rnn", 1, 200, 10_000),
    "LSTM 1x200, V=10k": ("lstm", 1, 200, 10_000),
    "LSTM 2x650, V=10k (PTB)": ("lstm", 2, 650, 10_000),
    "LSTM 2x650, V=33k (WikiText-2)": ("lstm", 2, 650, 33_278),
}
BATCH, BPTT = 20, 35
NETWORKS = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, latency per message
HOSTS = (2, 4, 8, 16, 32, 64)


def token_stream(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    p = 1.0 / (np.arange(vocab) + 10.0)
    return np.random.default_rng(seed).choice(vocab, size=n, p=p / p.sum()).astype(np.int32)


def measure(cell: str, layers: int, H: int, V: int, windows: int) -> dict:
    from rnncli.config import TrainConfig
    from rnncli.model import ModelShape, RNNModel
    from rnncli.training import Trainer

    model = RNNModel(ModelShape(vocab_size=V, cell=cell, embedding_size=H, hidden_size=H, layers=layers))
    model.init_params(np.random.default_rng(0), 0.1)
    trainer = Trainer(model, TrainConfig(batch_size=BATCH, bptt=BPTT, lr=1.0, clip=0.25), np.random.default_rng(0))
    data = token_stream(V, (windows + 4) * BATCH * BPTT + 1)
    grid = data[: len(data) // BATCH * BATCH].reshape(BATCH, -1).T
    times, rows = [], []
    for w in range(windows + 2):
        x, y = grid[w * BPTT : (w + 1) * BPTT], grid[w * BPTT + 1 : (w + 1) * BPTT + 1]
        t0 = time.perf_counter()
        trainer.step(x, y)
        if w >= 2:
            times.append(time.perf_counter() - t0)
            rows.append(len(np.unique(x[:, : BATCH // 2])))  # a worker's rows, at half the batch
    dense = sum(p.size for k, p in model.params.items() if k != "encoder.weight") * 4
    return {
        "t20": statistics.median(times),
        "rows_per_10": statistics.median(rows),
        "dense_bytes": dense,
        "E": H,
        "V": V,
    }


def step_time(m: dict, K: int, b: int, bandwidth: float, latency: float) -> tuple[float, float]:
    compute = m["t20"] * b / BATCH
    rows = m["rows_per_10"] * b / 10  # distinct words grow at most linearly with the streams
    reduce = 2 * (K - 1) / K * m["dense_bytes"] / bandwidth + 2 * (K - 1) * latency
    gather = (K - 1) / K * K * rows * (4 * m["E"] + 8) / bandwidth + (K - 1) * latency
    dense_embedding = 2 * (K - 1) / K * m["V"] * m["E"] * 4 / bandwidth + 2 * (K - 1) * latency
    # comm._allgather_rows switches to the dense reduction when the gathered rows weigh more
    embedding = dense_embedding if K * rows * (4 * m["E"] + 8) > 2 * m["V"] * m["E"] * 4 else gather
    return compute, reduce + embedding


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=10)
    a = p.parse_args()
    measured = {}
    print("| model | measured: ms per window (batch 20, one host) | dense bytes per step | rows per worker (b=10) |")
    print("|---|---:|---:|---:|")
    for label, spec in MODELS.items():
        m = measured[label] = measure(*spec, windows=a.windows if spec[2] <= 200 else max(3, a.windows // 2))
        print(f"| {label} | {m['t20'] * 1000:.1f} | {m['dense_bytes']:,} | {m['rows_per_10']:.0f} |")
    for net, (bw, lat) in NETWORKS.items():
        print(f"\nProjected, {net} (latency {lat * 1e6:.0f} us a message), batch 20 per worker:\n")
        print("| model | " + " | ".join(f"K={k}" for k in HOSTS) + " | b for 90% at K=64 |")
        print("|---|" + "---:|" * (len(HOSTS) + 1))
        for label, m in measured.items():
            cells = []
            for K in HOSTS:
                compute, comm = step_time(m, K, BATCH, bw, lat)
                tps = K * BATCH * BPTT / (compute + comm)
                cells.append(f"{tps:,.0f} tok/s, {compute / (compute + comm):.0%}")
            need = next((b for b in range(1, 100_000) if _efficiency(m, 64, b, bw, lat) >= 0.9), None)
            print(f"| {label} | " + " | ".join(cells) + f" | {need} |")


def _efficiency(m: dict, K: int, b: int, bw: float, lat: float) -> float:
    compute, comm = step_time(m, K, b, bw, lat)
    return compute / (compute + comm)


if __name__ == "__main__":
    main()
