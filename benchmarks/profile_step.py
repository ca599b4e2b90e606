"""Where the time of one training step goes: a cProfile of repeated windows.

    python benchmarks/profile_step.py --cell lstm --hidden 200 --vocab 10000
    python benchmarks/profile_step.py --source /path/to/other/checkout     # profile another version

It times ``train.Trainer.step``, the step `rnn train` takes (forward, BPTT backward,
gradient reduction, clipping, update); a checkout older than the Trainer cannot be profiled.

Prints ms per window, tokens/s, and the functions that take the most time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import numpy as np


def use_source(checkout: str) -> None:
    """Import rnncli from another checkout (e.g. a `git worktree` of an older commit).  An editable
    install maps the package through a finder on sys.meta_path, ahead of PYTHONPATH, so that
    finder is taken out first."""

    def editable(finder) -> bool:
        return "editable" in getattr(finder, "__name__", type(finder).__name__).lower()

    sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
    sys.path.insert(0, checkout)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--source", metavar="DIR", help="profile the rnncli package of this checkout instead")
    p.add_argument("--cell", default="rnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--softmax", default="full")
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--top", type=int, default=15)
    a = p.parse_args()
    if a.source:
        use_source(a.source)
    import rnncli
    from rnncli.config import TrainConfig
    from rnncli.model import ModelShape, RNNModel
    from rnncli.training import Trainer  # the real training step, as `rnn train` runs it

    print(f"rnncli from {rnncli.__file__}")
    kw = {"softmax": a.softmax} if a.softmax != "full" else {}
    model = RNNModel(
        ModelShape(
            vocab_size=a.vocab, cell=a.cell, embedding_size=a.hidden, hidden_size=a.hidden, layers=a.layers, **kw
        )
    )
    model.init_params(np.random.default_rng(0), 0.1)
    trainer = Trainer(model, TrainConfig(batch_size=a.batch, bptt=a.bptt, lr=1.0, clip=0.25), np.random.default_rng(0))
    rng = np.random.default_rng(0)

    def step():
        x = rng.integers(0, a.vocab, (a.bptt, a.batch))
        y = rng.integers(0, a.vocab, (a.bptt, a.batch))
        trainer.step(x, y)

    for _ in range(3):
        step()
    times = []
    for _ in range(a.windows):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    ms = float(np.median(times)) * 1000
    print(
        f"{a.cell} {a.layers}x{a.hidden} V={a.vocab} softmax={a.softmax}: median {ms:.1f} ms/window, "
        f"{a.batch * a.bptt / ms * 1000:,.0f} tokens/s"
    )
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(a.windows):
        step()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
