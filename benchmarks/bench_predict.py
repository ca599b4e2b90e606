"""Benchmark of `rnn predict`: cold start and batch throughput, as ratios measured in one run.

    python benchmarks/bench_predict.py [--checkpoint DIR] [--repeat 5]

Needs a trained default model (`rnn train configs/default.yaml`, or --checkpoint).
Prints medians over --repeat runs:

* cold start: wall time of `rnn predict "sentindo-se"` against `python -c "import numpy"`
  (target: under 1.5x);
* throughput: 10,000 prompts (sentence beginnings from data/train) through
  `rnn predict - --format json`, in prompts per second of wall time after start-up
  (the same command with one prompt is subtracted; target: at least 20,000/s), against the
  single-prompt code path called 10,000 times in one process (target: at least 20x).

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_PROMPTS = 10_000


def rnn_command() -> list[str]:
    """The installed `rnn` script next to this interpreter (what users run), else `python -m rnncli`."""
    script = Path(sys.executable).with_name("rnn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rnncli"]


def wall(cmd: list[str], stdin_path: str | None = None, env: dict | None = None) -> float:
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, check=True, env=env)
        return time.perf_counter() - t0
    finally:
        if stdin_path:
            stdin.close()


def print_imports(cmd: list[str], env: dict) -> None:
    """What `rnn predict` imports (python -X importtime): the packages that take the most time,
    each module's own time summed under its top-level package, and whether yaml, tqdm or the
    training code came along (a command imports only what it uses)."""
    out = subprocess.run(cmd, env=dict(env, PYTHONPROFILEIMPORTTIME="1"), capture_output=True, text=True)
    own: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        top = name.split(".")[0] if not name.startswith("rnncli") else ".".join(name.split(".")[:2])
        own[top] = own.get(top, 0) + int(self_us)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{name} {us / 1000:.1f}" for name, us in ranked[:12])
    total = sum(own.values()) / 1000
    print(f"imports of rnn predict (python -X importtime, own ms by package, total {total:.0f} ms): {shown}")
    unwanted = [m for m in ("yaml", "tqdm", "rnncli.training", "rnncli.data", "mpi4py") if m in own]
    print(f"  imported that predict does not use: {', '.join(unwanted) or 'none'}")


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """Beginnings (1 to 8 words) of random lines of the bundled corpus."""
    lines = []
    for path in sorted((ROOT / "data" / "train").glob("*.txt")):
        lines += [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choice(lines)
        out.append(" ".join(words[: rng.randint(1, min(8, len(words)))]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=os.environ.get("RNN_CHECKPOINT", str(ROOT / "checkpoints" / "default")))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--blas-threads",
        default="1",
        help="OPENBLAS/OMP/MKL threads for every process timed here (default 1: on a small shared machine "
        "BLAS threads spin against each other; 'auto' leaves the library's default)",
    )
    args = ap.parse_args()
    if args.blas_threads != "auto":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = args.blas_threads  # before numpy is imported here, and inherited by every child
    ckpt = args.checkpoint
    if not Path(ckpt).exists():
        sys.exit(f"no checkpoint at {ckpt}: run `rnn train configs/default.yaml` first or give --checkpoint")
    rnn = rnn_command()
    predict = rnn + ["predict", "--checkpoint", ckpt]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, BLAS threads {args.blas_threads}, "
        f"rnn = {' '.join(rnn)}, checkpoint {ckpt}"
    )

    # ------------------------------------------------------------ cold start
    # Twice: as this environment runs it, and with Python's bytecode cache usable. An installed
    # package has its .pyc files (pip compiles them; an editable install writes them on first
    # run), but PYTHONDONTWRITEBYTECODE=1, which some machines set, makes every start of a source
    # checkout compile our modules again while numpy's come precompiled from site-packages.
    with tempfile.TemporaryDirectory() as cache:
        cached_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached_env["PYTHONPYCACHEPREFIX"] = cache  # writes nothing into the project
        settings = [("as this environment runs it", None)]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            settings.append(("bytecode cached, as after pip install", cached_env))
        for label, env in settings:
            numpy_t, rnn_t = [], []
            wall(predict + ["sentindo-se"], env=env)  # warm the file cache (and the bytecode cache) once
            wall([sys.executable, "-c", "import numpy"], env=env)
            for _ in range(max(args.repeat, 7)):
                numpy_t.append(wall([sys.executable, "-c", "import numpy"], env=env))
                rnn_t.append(wall(predict + ["sentindo-se"], env=env))
            n_med, r_med = statistics.median(numpy_t), statistics.median(rnn_t)
            print(
                f"cold start ({label}): python -c 'import numpy' {n_med * 1000:.0f} ms, "
                f"rnn predict {r_med * 1000:.0f} ms, ratio {r_med / n_med:.2f}x  (target < 1.5x)"
            )
        print_imports(predict + ["sentindo-se"], cached_env)

    # ------------------------------------------------------------ throughput
    prompts = make_prompts(N_PROMPTS)
    with tempfile.TemporaryDirectory() as tmp:
        many, one = Path(tmp) / "many.txt", Path(tmp) / "one.txt"
        many.write_text("\n".join(prompts) + "\n", encoding="utf-8")
        one.write_text(prompts[0] + "\n", encoding="utf-8")
        cmd = predict + ["-", "--format", "json"]
        t_many, t_one = [], []
        for _ in range(args.repeat):
            t_one.append(wall(cmd, str(one)))
            t_many.append(wall(cmd, str(many)))
    startup, total = statistics.median(t_one), statistics.median(t_many)
    batch_rate = N_PROMPTS / max(total - startup, 1e-9)
    print(
        f"batch: {N_PROMPTS:,} prompts in {total:.3f} s, start-up (1 prompt) {startup:.3f} s "
        f"-> {batch_rate:,.0f} prompts/s after start-up  (target >= 20,000)"
    )

    # the single-prompt code path of the CLI (tokenize, network, top-k, JSON line), one prompt at a time
    from rnncli.api import load
    from rnncli.cli.predict import _predictions

    model = load(ckpt)
    single_t = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for p in prompts:
            _predictions([p], model.predict([p], k=5), True, "json", model.path)
        single_t.append(time.perf_counter() - t0)
    single_rate = N_PROMPTS / statistics.median(single_t)
    print(f"single-prompt path in one process: {single_rate:,.0f} prompts/s")
    print(f"batch / single ratio: {batch_rate / single_rate:.1f}x  (target >= 20x)")

    # What no batching can remove: the network and the exact top-k over the vocabulary for the
    # same 10,000 prompts, already tokenized, with no output written.  Its rate bounds the batch
    # rate from above, so it bounds the batch / single ratio too.
    import numpy as np

    from rnncli.generate import next_log_probs, top_k_rows

    contexts = [model._context(model.tokenize_prompt(p)) for p in prompts]
    exclude = (model.vocab.unk_id, model.vocab.eos_id)
    floor_t = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        top_k_rows(next_log_probs(model.forward, contexts, dtype=np.float32), 5, exclude)
        floor_t.append(time.perf_counter() - t0)
    floor_rate = N_PROMPTS / statistics.median(floor_t)
    print(
        f"network + top-5 alone (no tokenizing, no output): {floor_rate:,.0f} prompts/s "
        f"({1e6 / floor_rate:.1f} us/prompt) -> batch / single can be at most {floor_rate / single_rate:.1f}x "
        f"with this model and {args.blas_threads} BLAS thread(s)"
    )


if __name__ == "__main__":
    main()
