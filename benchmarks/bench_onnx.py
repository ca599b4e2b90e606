"""`rnn predict` from a checkpoint and from its `rnn export` files: prompts per second, in one run.

    python benchmarks/bench_onnx.py [--checkpoint checkpoints/default] [--repeat 5] [--prompts 10000]

Exports the checkpoint to a float32 and an int8 `.onnx` file (in a temporary folder), then runs
`rnn predict -c MODEL - --format json` on the same prompts (sentence beginnings of the bundled corpus,
as bench_predict.py) for each of the three, and prints the median wall time, the prompts per second
after start-up (the same command with one prompt subtracted) and each file's rate against the
checkpoint's. Also whether the three print the same first words. Needs the onnx extra.

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_prompts, rnn_command  # noqa: E402


def run(args: list[str], stdin: Path) -> tuple[float, str]:
    with open(stdin, "rb") as feed:
        t0 = time.perf_counter()
        out = subprocess.run(rnn_command() + args, stdin=feed, capture_output=True, check=True)
        return time.perf_counter() - t0, out.stdout.decode("utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/default")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        many, one = tmp / "prompts.txt", tmp / "one.txt"
        many.write_text("\n".join(make_prompts(args.prompts)) + "\n", encoding="utf-8")
        one.write_text("sentindo-se\n", encoding="utf-8")
        models = {"checkpoint": args.checkpoint}
        for name, extra in (("onnx float32", []), ("onnx int8", ["--int8"])):
            path = tmp / (name.replace(" ", "-") + ".onnx")
            subprocess.run(rnn_command() + ["export", "-c", args.checkpoint, "-o", str(path), *extra], check=True)
            models[name] = str(path)
        rates, firsts = {}, {}
        for name, model in models.items():
            cmd = ["predict", "-c", model, "-", "--format", "json"]
            start = statistics.median(run(cmd, one)[0] for _ in range(args.repeat))
            times = []
            for _ in range(args.repeat):
                took, out = run(cmd, many)
                times.append(took)
            firsts[name] = [json.loads(line)["predictions"][0]["word"] for line in out.splitlines()]
            full = statistics.median(times)
            rates[name] = args.prompts / max(full - start, 1e-9)
            print(
                f"{name:13s} {args.prompts:,} prompts in {full:.3f} s, start-up {start:.3f} s -> "
                f"{rates[name]:,.0f} prompts/s after start-up"
            )
        for name in list(models)[1:]:
            same = sum(a == b for a, b in zip(firsts[name], firsts["checkpoint"])) / args.prompts
            print(f"{name} / checkpoint: {rates[name] / rates['checkpoint']:.2f}x; the same first word for {same:.2%}")


if __name__ == "__main__":
    main()
