"""What a keyboard-sized model is: an exported `.onnx` file's size, accuracy and latency in onnxruntime.

    rnn tokenize -c checkpoints/keyboard TEXT > toks.txt
    python benchmarks/bench_keyboard.py keyboard-int8.onnx toks.txt [--repeat 1000]

Prints the file's size, the perplexity and the next-word top-1 and top-3 accuracy over the tokens
(as `rnn eval` counts them: `<unk>` never offered and never a hit, ties to the lower id; the state
carried through the text, every token predicted after an initial `<eos>`), and the latency of one
next-word step (one token in, the state carried, the distribution out) in onnxruntime on one thread:
the median of --repeat calls.  Reads only the `.onnx` file (numpy, onnx and onnxruntime).

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_perplexity import UNK, read_ids, read_vocab  # noqa: E402


def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def accuracy(sess, ids: np.ndarray, unk: int | None, window: int = 256) -> tuple[float, float, float]:
    """(perplexity, top-1, top-3) of ids[1:] given the tokens before them."""
    inputs = {i.name: i for i in sess.get_inputs()}
    names = [n for n in ("h0", "c0") if n in inputs]
    L, _, H = inputs["h0"].shape
    state = {n: np.zeros((L, 1, H), dtype=np.float32) for n in names}
    outputs = ["log_probs"] + [n[0] + "n" for n in names]
    nll, top1, top3, n = 0.0, 0, 0, len(ids) - 1
    for lo in range(0, n, window):
        x, y = ids[lo : min(lo + window, n)], ids[lo + 1 : min(lo + window, n) + 1]
        lp, *new = sess.run(outputs, {"input_ids": x[:, None], **state})
        lp = lp[:, 0, :]  # (T, V)
        target = lp[np.arange(len(y)), y]
        nll -= float(target.astype(np.float64).sum())
        if unk is not None:
            lp[:, unk] = -np.inf
        ids_v = np.arange(lp.shape[1])
        rank = (lp > target[:, None]).sum(axis=1) + ((lp == target[:, None]) & (ids_v < y[:, None])).sum(axis=1)
        ok = y != unk
        top1 += int(((rank == 0) & ok).sum())
        top3 += int(((rank < 3) & ok).sum())
        state = dict(zip(names, new))
    return math.exp(nll / n), top1 / n, top3 / n


def latency(sess, repeat: int) -> float:
    """Median seconds of one next-word step: one token in, the state carried."""
    inputs = {i.name: i for i in sess.get_inputs()}
    names = [n for n in ("h0", "c0") if n in inputs]
    L, _, H = inputs["h0"].shape
    state = {n: np.zeros((L, 1, H), dtype=np.float32) for n in names}
    outputs = ["log_probs"] + [n[0] + "n" for n in names]
    x = np.array([[1]], dtype=np.int64)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, *new = sess.run(outputs, {"input_ids": x, **state})
        times.append(time.perf_counter() - t0)
        state = dict(zip(names, new))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("tokens")
    ap.add_argument("--repeat", type=int, default=1000)
    args = ap.parse_args()
    vocab, units = read_vocab(args.model)
    if units != "words":
        sys.exit(f"{args.model}: a word-piece model; its whole-word figures are rnn eval's (rnn eval -c FILE TEXT)")
    sess = session(args.model)
    ppl, top1, top3 = accuracy(sess, read_ids(args.tokens, vocab), vocab.index(UNK) if UNK in vocab else None)
    step = latency(sess, args.repeat)
    size = os.path.getsize(args.model)
    print(
        f"{args.model}: {size:,} bytes ({size / 2**20:.2f} MiB), vocabulary {len(vocab):,}; "
        f"perplexity {ppl:.2f}, top1 {top1:.4f}, top3 {top3:.4f}; one next-word step {step * 1e3:.3f} ms "
        f"(median of {args.repeat}, one thread)"
    )


if __name__ == "__main__":
    main()
