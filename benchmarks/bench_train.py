"""Training and evaluation speed of rnn against PyTorch on the CPU, measured in one run.

    python benchmarks/bench_train.py                 # every row, 3 alternated runs each
    python benchmarks/bench_train.py --rows rnn,lstm --runs 5

For each configuration it trains our model and the equivalent torch.nn model
(Embedding -> RNN/LSTM/GRU -> Linear, cross-entropy, SGD with gradient
clipping, as pytorch/examples word_language_model does) on the same token
stream for the same number of tokens, each run in a fresh process so that peak
resident memory is that run's own, alternating ours and PyTorch's.  It prints
medians of tokens/s and peak RSS, the ratios ours/PyTorch, and our achieved
GFLOP/s (counted from the layer shapes) against the float32 matrix-product
peak that NumPy reaches in the same run.

The adaptive-softmax row compares our adaptive output layer with our full one
(speed), and their validation perplexity after the same number of training
tokens on WikiText-2 (when ../shared/data is present).  This is a script that
prints figures; nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

ROWS = {
    # name: (cell, layers, hidden, vocab, batch, bptt, softmax)
    "rnn": ("rnn", 1, 200, 10_000, 20, 35, "full"),
    "lstm": ("lstm", 1, 200, 10_000, 20, 35, "full"),
    "gru": ("gru", 1, 200, 10_000, 20, 35, "full"),
    "lstm650": ("lstm", 2, 650, 33_278, 20, 35, "full"),
}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def token_stream(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """A Zipf-like synthetic stream: word i has probability proportional to 1 / (i + 10)."""
    p = 1.0 / (np.arange(vocab) + 10.0)
    return np.random.default_rng(seed).choice(vocab, size=n, p=p / p.sum()).astype(np.int32)


def peak_rss_mb() -> float:
    """This process's peak resident memory.  /proc's VmHWM, because getrusage's ru_maxrss
    also carries the high-water mark of the parent process over exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------ workers (one process per run)
def worker_ours(a) -> dict:
    from rnncli.config import TrainConfig
    from rnncli.infer import evaluate
    from rnncli.model import ModelShape, RNNModel
    from rnncli.training import Trainer

    shape = ModelShape(
        vocab_size=a.vocab,
        cell=a.cell,
        embedding_size=a.hidden,
        hidden_size=a.hidden,
        layers=a.layers,
        softmax=a.softmax,
        cutoffs=tuple(int(c) for c in a.cutoffs.split(",")),
    )
    model = RNNModel(shape)
    model.init_params(np.random.default_rng(0), 0.1)
    data, valid = load_stream(a)
    if a.eval:
        ids = data[: a.windows * a.batch * a.bptt]
        evaluate(model, ids[: 20 * a.batch], streams=a.batch)  # warm-up
        t0 = time.perf_counter()
        evaluate(model, ids, streams=a.batch)
        dt = time.perf_counter() - t0
        return {"tokens_per_sec": len(ids) / dt, "peak_rss_mb": peak_rss_mb()}
    # the real training step of `rnn train`: SGD, clipping at 0.25, the hidden state carried
    trainer = Trainer(model, TrainConfig(batch_size=a.batch, bptt=a.bptt, lr=a.lr, clip=0.25), np.random.default_rng(0))
    rows = len(data) // a.batch
    grid = data[: rows * a.batch].reshape(a.batch, rows).T
    timed, t0 = 0, None
    for w in range(a.warmup + a.windows):
        if w == a.warmup:
            t0 = time.perf_counter()
        i = (w * a.bptt) % (rows - a.bptt - 1)
        x, y = grid[i : i + a.bptt], grid[i + 1 : i + 1 + a.bptt]
        trainer.step(x, y)
        if w >= a.warmup:
            timed += x.size
    dt = time.perf_counter() - t0
    out = {"tokens_per_sec": timed / dt, "peak_rss_mb": peak_rss_mb()}
    if valid is not None:
        out["valid_ppl"] = evaluate(model, valid, streams=10, rank=False).perplexity
    return out


def worker_torch(a) -> dict:
    import torch

    torch.manual_seed(0)
    V, H = a.vocab, a.hidden
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[a.cell]
    encoder, rnn = torch.nn.Embedding(V, H), cls(H, H, a.layers)
    if a.softmax == "adaptive":
        cutoffs = [int(c) for c in a.cutoffs.split(",") if int(c) < V]
        decoder = torch.nn.AdaptiveLogSoftmaxWithLoss(H, V, cutoffs, div_value=4.0, head_bias=True)
    else:
        decoder = torch.nn.Linear(H, V)
    params = [*encoder.parameters(), *rnn.parameters(), *decoder.parameters()]

    def loss_of(out, y):
        if a.softmax == "adaptive":
            return decoder(out.view(-1, H), y.reshape(-1)).loss
        return torch.nn.functional.cross_entropy(decoder(out).view(-1, V), y.reshape(-1))

    data, _ = load_stream(a)
    if a.eval:
        ids = torch.from_numpy(data[: a.windows * a.batch * a.bptt].astype(np.int64))
        grid = ids[: len(ids) // a.batch * a.batch].view(a.batch, -1).t().contiguous()
        t0 = time.perf_counter()
        with torch.no_grad():
            state = None
            for i in range(0, grid.size(0) - 1, a.bptt):
                x, y = grid[i : i + a.bptt], grid[i + 1 : i + 1 + a.bptt]
                x = x[: len(y)]
                out, state = rnn(encoder(x), state)
                if a.softmax == "adaptive":
                    logp = decoder.log_prob(out.view(-1, H))
                else:
                    logp = torch.log_softmax(decoder(out).view(-1, V), dim=-1)
                torch.nn.functional.nll_loss(logp, y.reshape(-1))
        dt = time.perf_counter() - t0
        return {"tokens_per_sec": len(ids) / dt, "peak_rss_mb": peak_rss_mb()}
    opt = torch.optim.SGD(params, lr=a.lr)
    grid = torch.from_numpy(data.astype(np.int64))
    rows = len(grid) // a.batch
    grid = grid[: rows * a.batch].view(a.batch, rows).t().contiguous()
    state, timed, t0 = None, 0, None
    for w in range(a.warmup + a.windows):
        if w == a.warmup:
            t0 = time.perf_counter()
        i = (w * a.bptt) % (rows - a.bptt - 1)
        x, y = grid[i : i + a.bptt], grid[i + 1 : i + 1 + a.bptt]
        if state is not None:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        out, state = rnn(encoder(x), state)
        loss = loss_of(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
        if w >= a.warmup:
            timed += x.numel()
    dt = time.perf_counter() - t0
    return {"tokens_per_sec": timed / dt, "peak_rss_mb": peak_rss_mb()}


def load_stream(a):
    """Synthetic ids, or WikiText-2 ids (train slice, valid slice) for the quality comparison."""
    if not a.wikitext:
        return token_stream(a.vocab, max(200_000, (a.windows + a.warmup + 2) * a.batch * a.bptt)), None
    from rnncli.data import build_corpus
    from rnncli.tokenizer import Tokenizer

    class DataCfg:
        train = str(SHARED / "wikitext-2" / "train.txt")
        valid = str(SHARED / "wikitext-2" / "valid.txt")
        test = None
        valid_fraction = 0.0
        encoding = "utf-8"
        errors = "strict"

    corpus = build_corpus(DataCfg, Tokenizer(mode="whitespace", lowercase=False), 1, 0)
    return corpus.train, corpus.valid[: a.valid_tokens]


# ------------------------------------------------------------------ driver
def run_worker(kind: str, args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak() -> float:
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * 2048**3 / statistics.median(times[2:]) / 1e9


def train_flops_per_token(cell, layers, H, V, softmax, cutoffs=None, div=None, cluster_share=None) -> float:
    """Forward multiply-adds x2 per token, times 3 for forward + backward (two products per forward one).
    ``cutoffs`` and ``div`` default to the config's (config.ModelConfig: the defaults live there alone)."""
    from rnncli.config import ModelConfig

    cutoffs = ModelConfig().cutoffs if cutoffs is None else cutoffs
    div = ModelConfig().div_value if div is None else div
    G = GATES[cell]
    fwd = layers * 2 * G * H * (H + H)
    if softmax == "full":
        fwd += 2 * H * V
    else:
        bounds = [*cutoffs, V]
        fwd += 2 * H * (cutoffs[0] + len(cutoffs))
        for i in range(len(cutoffs)):
            p = int(H // div ** (i + 1))
            share = cluster_share[i] if cluster_share else 0.1
            fwd += share * (2 * H * p + 2 * p * (bounds[i + 1] - bounds[i]))
    return 3 * fwd


def worker_args(cell, layers, H, V, B, T, softmax, windows, extra=(), cutoffs="700,3000,10000") -> list[str]:
    return [
        "--cell",
        cell,
        "--layers",
        str(layers),
        "--hidden",
        str(H),
        "--vocab",
        str(V),
        "--batch",
        str(B),
        "--bptt",
        str(T),
        "--softmax",
        softmax,
        "--windows",
        str(windows),
        *extra,
        "--cutoffs",
        cutoffs,
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="rnn,lstm,gru,lstm650,adaptive,eval")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--quality-tokens",
        type=int,
        default=150_000,
        help="training tokens for the adaptive-vs-full perplexity comparison (0 = skip it)",
    )
    p.add_argument("--worker")
    p.add_argument("--cell", default="lstm")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--vocab", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--softmax", default="full")
    p.add_argument("--cutoffs", default="700,3000,10000", help="adaptive softmax cutoffs (word ranks)")
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--eval", action="store_true")
    p.add_argument("--wikitext", action="store_true")
    p.add_argument("--valid-tokens", type=int, default=30_000)
    a = p.parse_args()
    if a.worker:
        result = worker_ours(a) if a.worker == "ours" else worker_torch(a)
        print(json.dumps(result))
        return

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    rows = a.rows.split(",")
    peak = matmul_peak()
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; torch {torch_version or 'not installed'}")
    print(f"numpy float32 matmul peak (2048^3, median): {peak:.1f} GFLOP/s\n")
    header = (
        f"{'config':<44} {'ours tok/s':>10} {'torch tok/s':>11} {'ratio':>6} {'ours MB':>8} {'torch MB':>8} "
        f"{'mem ratio':>9} {'GFLOP/s':>8} {'of peak':>7}"
    )
    print(header)
    print("-" * len(header))

    def compare(label, wargs, flops_per_token=None, eval_mode=False):
        ours, ref = [], []
        extra = ["--eval"] if eval_mode else []
        for _ in range(a.runs):
            ours.append(run_worker("ours", wargs + extra))
            if torch_version:
                ref.append(run_worker("torch", wargs + extra))
        o_tps = statistics.median(r["tokens_per_sec"] for r in ours)
        o_mb = statistics.median(r["peak_rss_mb"] for r in ours)
        line = f"{label:<44} {o_tps:>10,.0f} "
        if ref:
            t_tps = statistics.median(r["tokens_per_sec"] for r in ref)
            t_mb = statistics.median(r["peak_rss_mb"] for r in ref)
            line += f"{t_tps:>11,.0f} {o_tps / t_tps:>6.2f} {o_mb:>8.0f} {t_mb:>8.0f} {o_mb / t_mb:>9.2f}"
        else:
            line += f"{'-':>11} {'-':>6} {o_mb:>8.0f} {'-':>8} {'-':>9}"
        if flops_per_token:
            g = flops_per_token * o_tps / 1e9
            line += f" {g:>8.1f} {g / peak:>6.0%}"
        print(line, flush=True)
        return o_tps

    for name in ("rnn", "lstm", "gru", "lstm650"):
        if name not in rows:
            continue
        cell, layers, H, V, B, T, sm = ROWS[name]
        windows = 30 if H <= 200 else 8
        label = f"train {cell.upper()} {layers}x{H}, V={V:,}, batch {B}, bptt {T}"
        compare(
            label, worker_args(cell, layers, H, V, B, T, sm, windows), train_flops_per_token(cell, layers, H, V, sm)
        )

    if "eval" in rows:
        compare(
            "eval LSTM 1x200, V=10,000, 10 streams (no_grad)",
            worker_args("lstm", 1, 200, 10_000, 10, 35, "full", 200),
            eval_mode=True,
        )

    if "adaptive" in rows:
        print(f"\nadaptive softmax (cutoffs {a.cutoffs}; div 4) vs our full softmax, LSTM 2x650, V=33,278:")

        def medians(kind: str) -> dict[str, tuple[float, float]]:
            """Median tokens/s and peak RSS of `kind`'s worker, full and adaptive softmax."""
            out = {}
            for sm in ("full", "adaptive"):
                args = worker_args("lstm", 2, 650, 33_278, 20, 35, sm, 8, cutoffs=a.cutoffs)
                runs = [run_worker(kind, args) for _ in range(a.runs)]
                out[sm] = (
                    statistics.median(r["tokens_per_sec"] for r in runs),
                    statistics.median(r["peak_rss_mb"] for r in runs),
                )
            return out

        speed = medians("ours")
        for sm, (tps, mb) in speed.items():
            print(f"  {sm:<9} {tps:>8,.0f} tokens/s   peak RSS {mb:,.0f} MB")
        print(f"  speed ratio adaptive/full: {speed['adaptive'][0] / speed['full'][0]:.2f} (target >= 3.0)", flush=True)
        if torch_version:
            # the same comparison inside PyTorch (nn.AdaptiveLogSoftmaxWithLoss vs nn.Linear +
            # cross-entropy): how much of the step any implementation can save on this model
            ref = medians("torch")
            for sm, (tps, _) in ref.items():
                print(f"  torch {sm:<9} {tps:>8,.0f} tokens/s")
            print(
                f"  PyTorch's own ratio adaptive/full on the same model: {ref['adaptive'][0] / ref['full'][0]:.2f}",
                flush=True,
            )
        if a.quality_tokens and (SHARED / "wikitext-2").exists():
            windows = max(1, a.quality_tokens // (20 * 35))
            ppl = {}
            for sm in ("full", "adaptive"):
                r = run_worker(
                    "ours",
                    worker_args(
                        "lstm", 2, 650, 33_278, 20, 35, sm, windows, ["--wikitext", "--warmup", "0", "--lr", "20"]
                    ),
                )
                ppl[sm] = r["valid_ppl"]
            print(
                f"  WikiText-2 valid ppl after {windows * 700:,} training tokens (SGD lr 20, clip 0.25): "
                f"full {ppl['full']:.1f}, adaptive {ppl['adaptive']:.1f} "
                f"({(ppl['adaptive'] / ppl['full'] - 1) * 100:+.1f}%, target <= +5%)"
            )
        elif a.quality_tokens:
            print("  (perplexity comparison skipped: ../shared/data/wikitext-2 is not here)")
    if math.isnan(peak):
        sys.exit(1)


if __name__ == "__main__":
    main()
