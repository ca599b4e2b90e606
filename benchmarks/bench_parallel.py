"""Data-parallel training speed: one process against `mpirun -n K` workers, measured in one run.

    python benchmarks/bench_parallel.py                   # every row, 3 alternated runs each
    python benchmarks/bench_parallel.py --rows rnn --runs 5

For RNN 1x200, LSTM 1x200 and LSTM 2x650 (V=10,000, batch 20, bptt 35) it times
``train.Trainer.step`` (the step `rnn train` takes, with the real communicator)
on a synthetic Zipf-like token stream:

- ``1 process``: one process, every core a BLAS thread (the reference);
- ``mpirun -n 2``: two workers of 10 streams, one thread each, each gradient
  reduced by a blocking allreduce as soon as its layer's backward is done (the default);
- ``-n 2 overlapped``: the same with non-blocking allreduces that run on while the
  backward pass goes on (``RNN_MPI_OVERLAP=1``, as DDP does);
- ``-n 4``: four workers of 5 streams on the same cores (oversubscribed, to show it);
- ``ceiling``: two independent single processes, batch 10, one core each,
  no communication at all: the most two workers can give on this machine.

Runs alternate between the configurations and each figure is the median.  For
each MPI row it prints the share of rank 0's step time spent in communication
(packing, reductions and waiting for the other worker), and the measured cost
of the two ways of reducing the embedding's gradient (dense allreduce of the
(V, E) matrix, allgather of the window's rows).  Also the inputs of
``docs/scaling.md``: compute ms per window, bytes reduced per step.
A script that prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    # name: (cell, layers, hidden, vocab)
    "rnn": ("rnn", 1, 200, 10_000),
    "lstm": ("lstm", 1, 200, 10_000),
    "lstm650": ("lstm", 2, 650, 10_000),
}
BATCH, BPTT = 20, 35


def token_stream(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """A Zipf-like synthetic stream: word i has probability proportional to 1 / (i + 10)."""
    p = 1.0 / (np.arange(vocab) + 10.0)
    return np.random.default_rng(seed).choice(vocab, size=n, p=p / p.sum()).astype(np.int32)


# ------------------------------------------------------------------ the worker (one per process)
def worker(a) -> None:
    from rnncli.comm import communicator, limit_threads
    from rnncli.config import TrainConfig
    from rnncli.model import ModelShape, RNNModel
    from rnncli.optim import RowGrad
    from rnncli.training import Trainer

    if a.pin is not None:
        os.sched_setaffinity(0, {a.pin})
    comm = communicator()
    limiter = limit_threads(a.threads, comm)  # noqa: F841 (kept alive for the run)
    shape = ModelShape(vocab_size=a.vocab, cell=a.cell, embedding_size=a.hidden, hidden_size=a.hidden, layers=a.layers)
    model = RNNModel(shape)
    model.init_params(np.random.default_rng(0), 0.1)
    tc = TrainConfig(batch_size=a.batch, bptt=BPTT, lr=1.0, clip=0.25)
    trainer = Trainer(model, tc, np.random.default_rng(0), comm)
    trainer.share_from_root(None)  # initial weights from rank 0, as `rnn train` does
    windows = a.warmup + a.windows
    data = token_stream(a.vocab, (windows + 2) * BPTT * a.batch, seed=a.pin or 0)
    rows = len(data) // a.batch
    grid = np.ascontiguousarray(data[: rows * a.batch].reshape(a.batch, rows).T[:, trainer.lo : trainer.hi])
    t0 = comm_t0 = None
    for w in range(windows):
        if w == a.warmup:
            t0, comm_t0 = time.perf_counter(), comm.timer.seconds
        i = w * BPTT
        trainer.step(grid[i : i + BPTT], grid[i + 1 : i + 1 + BPTT])
    wall = time.perf_counter() - t0
    out = {
        "tokens_per_sec": a.windows * BPTT * a.batch / wall,
        "ms_per_window": wall / a.windows * 1000,
        "comm_share": (comm.timer.seconds - comm_t0) / wall,
        "bytes_reduced": 4 * sum(p.size for k, p in model.params.items() if k != "encoder.weight"),
    }
    if comm.size > 1:  # the embedding gradient: dense allreduce of (V, E) against an allgather of its rows
        from rnncli.comm import _MpiGradients

        x = grid[:BPTT]
        ids = np.unique(x)
        g = RowGrad(ids, np.ones((len(ids), a.hidden), dtype=np.float32), (a.vocab, a.hidden))
        dense = np.zeros((a.vocab, a.hidden), dtype=np.float32)
        times = {"dense": [], "rows": []}
        for _ in range(10):
            comm.comm.Barrier()
            s = time.perf_counter()
            comm.comm.Allreduce(comm.MPI.IN_PLACE, dense, op=comm.MPI.SUM)
            times["dense"].append(time.perf_counter() - s)
            comm.comm.Barrier()
            s = time.perf_counter()
            _MpiGradients(comm)._allgather_rows(g)
            times["rows"].append(time.perf_counter() - s)
        out["embedding_dense_ms"] = statistics.median(times["dense"]) * 1000
        out["embedding_rows_ms"] = statistics.median(times["rows"]) * 1000
        out["embedding_rows_bytes"] = int(len(ids) * (a.hidden * 4 + 8) * comm.size)
    if comm.is_root:
        print(json.dumps(out), flush=True)


# ------------------------------------------------------------------ the driver
def mpi_env(overlap: bool) -> dict:
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
        RNN_MPI_OVERLAP="1" if overlap else "0",
    )
    return env


def launch(row: str, k: int, threads: int, windows: int, overlap: bool = False) -> dict:
    cell, layers, H, V = ROWS[row]
    args = [__file__, "--worker", "--cell", cell, "--layers", str(layers), "--hidden", str(H), "--vocab", str(V)]
    args += ["--batch", str(BATCH), "--threads", str(threads), "--windows", str(windows)]
    cmd = [sys.executable, *args]
    if k > 1:
        cmd = [shutil.which("mpirun"), "-n", str(k), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=mpi_env(overlap))
    if out.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ceiling(row: str, windows: int) -> dict:
    """Two independent processes of batch 10, one thread and one core each, started together."""
    cell, layers, H, V = ROWS[row]
    procs = []
    for core in range(2):
        args = [__file__, "--worker", "--cell", cell, "--layers", str(layers), "--hidden", str(H), "--vocab", str(V)]
        args += ["--batch", str(BATCH // 2), "--threads", "1", "--windows", str(windows), "--pin", str(core)]
        procs.append(subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT))
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {"tokens_per_sec": sum(r["tokens_per_sec"] for r in results)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="rnn,lstm,lstm650")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--configs", default="", help="comma-separated configuration names to run (default: all)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cell", default="rnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--windows", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--pin", type=int, default=None)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    if shutil.which("mpirun") is None:
        raise SystemExit('bench_parallel needs mpirun: pip install -e ".[mpi]"')
    cores = os.cpu_count() or 1
    print(f"machine: {cores} cores; {sys.version.split()[0]}; numpy {np.__version__}")
    print(f"batch {BATCH}, bptt {BPTT}; medians of {a.runs} alternated runs; tokens/s of the whole job\n")
    configs = {
        "1 process": lambda row, n: launch(row, 1, cores, n),
        "mpirun -n 2": lambda row, n: launch(row, 2, 1, n, overlap=False),
        "-n 2 overlapped": lambda row, n: launch(row, 2, 1, n, overlap=True),
        "-n 4 (oversubscribed)": lambda row, n: launch(row, 4, 1, n),
        "ceiling (2 x batch 10)": ceiling,
    }
    if a.configs:
        keep = {"1 process", *a.configs.split(",")}
        configs = {k: v for k, v in configs.items() if k in keep}
    header = f"{'model':<14} {'configuration':<24} {'tokens/s':>9} {'vs 1':>6} {'comm':>6} {'ms/win':>7}"
    print(header + "   embedding gradient: dense allreduce / allgather of rows")
    for row in a.rows.split(","):
        cell, layers, H, V = ROWS[row]
        windows = 40 if H <= 200 else 10
        runs: dict[str, list[dict]] = {name: [] for name in configs}
        for _ in range(a.runs):
            for name, fn in configs.items():
                runs[name].append(fn(row, windows))
        base = statistics.median(r["tokens_per_sec"] for r in runs["1 process"])
        label = f"{cell.upper()} {layers}x{H}"
        for name, results in runs.items():
            tps = statistics.median(r["tokens_per_sec"] for r in results)
            line = f"{label:<14} {name:<24} {tps:>9,.0f} {tps / base:>5.2f}x"
            if "comm_share" in results[0] and name != "ceiling (2 x batch 10)":
                share = statistics.median(r["comm_share"] for r in results)
                ms = statistics.median(r["ms_per_window"] for r in results)
                line += f" {share:>6.1%} {ms:>7.1f}"
            if "embedding_dense_ms" in results[0]:
                d = statistics.median(r["embedding_dense_ms"] for r in results)
                g = statistics.median(r["embedding_rows_ms"] for r in results)
                line += f"   {d:.2f} ms / {g:.2f} ms"
            print(line, flush=True)
        one = runs["1 process"][0]
        print(f"{'':<14} dense bytes reduced per step: {one['bytes_reduced']:,} (+ the embedding's rows)\n", flush=True)


if __name__ == "__main__":
    main()
