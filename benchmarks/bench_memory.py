"""Benchmark of peak memory: the peak resident memory (RSS) of each command on one very long line,
beside that of `rnn predict "a"` on the same model (the interpreter and the model: the floor).

    python benchmarks/bench_memory.py [--checkpoint DIR] [--words 20000] [--repeat 1]

Writes into a temporary folder one line of --words words (the words of the bundled text, data/train/*
then data/test.txt, repeated in order and joined by spaces; its sentences end where the text's do),
as it is and with 1, 2 and 3 blanks (``___``, evenly spaced), then runs each command below on it in
a subprocess of this checkout (``python -m rnncli``) and reads the subprocess's peak RSS from the
kernel (``wait4``'s ``ru_maxrss``).  Prints, per command, the median over --repeat runs of the peak
RSS in MB, its ratio to the reference, the seconds it took and its exit status.  Each run is held
under an address-space limit (--limit-mb) and a time limit (--timeout), so a regression shows as
"out of memory" (exit 1) instead of taking the machine down.

Goal (issue 18): no command past 1 GB on 20,000-word lines with the default model; the memory of a
command is bounded by the model and a fixed working budget (``generate.WORK_FLOATS``), so the
figures hardly move with --words.  Time does move: filling several blanks scores every candidate
against the whole text up to the next blank, so the 3-blank fill of 20,000 words takes minutes.

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus_words() -> list[str]:
    data = ROOT / "data"
    files = sorted((data / "train").glob("*.txt")) + [data / "test.txt"]
    return [w for f in files for w in f.read_text(encoding="utf-8").split()]


def long_line(words: list[str], n: int, blanks: int) -> str:
    """n words of the text in order (repeated as needed), ``blanks`` of them replaced by ___, evenly spaced."""
    line = [words[i % len(words)] for i in range(n)]
    for k in range(blanks):
        line[(k + 1) * n // (blanks + 1)] = "___"
    return " ".join(line) + "\n"


def peak_rss(args: list[str], limit_mb: int, timeout: float) -> tuple[float, float, str]:
    """Run ``python -m rnncli ARGS`` in a subprocess: (its peak RSS in MB, seconds, exit status or why not)."""

    def limit() -> None:
        cap = limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rnncli", *args], stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=limit
        )
        status, usage = 0, None
        while usage is None:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                usage = ru
            elif time.perf_counter() - t0 > timeout:
                proc.send_signal(signal.SIGKILL)
            else:
                time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        secs = time.perf_counter() - t0
        err.seek(0)
        message = err.read().decode(errors="replace").strip().splitlines()
    code = proc.returncode
    how = "killed (timeout)" if code == -signal.SIGKILL else str(code)
    if code and message:
        how += f": {message[-1][:70]}"
    return usage.ru_maxrss / 1024, secs, how  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", "-c", default=str(ROOT / "checkpoints" / "default"))
    ap.add_argument("--words", type=int, default=20_000, help="words in the line [20000]")
    ap.add_argument("--repeat", type=int, default=1, help="runs per command; the median is shown [1]")
    ap.add_argument("--limit-mb", type=int, default=4000, help="address-space limit of each run, MB [4000]")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped [1800]")
    ap.add_argument("--only", nargs="*", default=None, help="run only the commands whose label contains one of these")
    args = ap.parse_args()
    words = corpus_words()
    c = ["-c", args.checkpoint]
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for blanks in range(4):
            files[blanks] = str(Path(tmp) / f"line{blanks}.txt")
            Path(files[blanks]).write_text(long_line(words, args.words, blanks), encoding="utf-8")
        runs = [
            ("reference: predict 'a'", ["predict", *c, "a"]),
            ("fill, 1 blank", ["fill", *c, "--input", files[1]]),
            ("fill, 2 blanks (beam 8)", ["fill", *c, "--input", files[2]]),
            ("fill, 3 blanks (beam 8)", ["fill", *c, "--input", files[3]]),
            ("predict --beam 5 --generate 10", ["predict", *c, "--beam", "5", "--generate", "10", "--input", files[0]]),
            ("score", ["score", *c, files[0]]),
            ("eval --fill --fill-sample 100", ["eval", *c, files[0], "--fill", "--fill-sample", "100"]),
            ("eval --fill", ["eval", *c, files[0], "--fill"]),
            ("eval --keystrokes", ["eval", *c, files[0], "--keystrokes"]),
        ]
        print(f"checkpoint {args.checkpoint}; one line of {args.words:,} words; median of {args.repeat} run(s)")
        print(f"{'command':34s} {'peak RSS MB':>11s} {'x reference':>11s} {'seconds':>9s}  exit")
        reference = None
        for label, cli in runs:
            if args.only and reference is not None and not any(o in label for o in args.only):
                continue
            got = [peak_rss(cli, args.limit_mb, args.timeout) for _ in range(args.repeat)]
            mb = statistics.median(g[0] for g in got)
            secs = statistics.median(g[1] for g in got)
            reference = reference or mb
            print(f"{label:34s} {mb:11.0f} {mb / reference:11.2f} {secs:9.1f}  {got[-1][2]}", flush=True)


if __name__ == "__main__":
    main()
