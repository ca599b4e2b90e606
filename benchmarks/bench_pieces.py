"""Word model against word-piece model, side by side in one run: targets, speed, and the search width.

    python benchmarks/bench_pieces.py [--config configs/default.yaml] [--test data/test.txt]
                                      [--words-ckpt DIR --pieces-ckpt DIR] [--skip-speed] [--width]

Trains both kinds from the same config (the piece model with --set tokenizer.units=pieces: same
text, same network, same epochs, hence the same training words) unless checkpoints are given, then
prints, for each kind:

* `rnn eval --keystrokes --format json` on the test text: per-word perplexity, top-1/top-5 of the
  whole next word, oov_rate and the keystroke saving rate with 3 suggestions;
* speed, as ratios of the two kinds measured in this run (medians of --repeat): `rnn predict` on
  10,000 prompts from stdin (prompts per second after start-up; target: pieces >= 1/4 of words),
  `rnn eval` on the training text (words per second; target: pieces >= 1/1.6 of words), and
  training (words per second from the summary; target: pieces >= 0.9 x words / units per word);
* with --width: how often the beam search's top 5 (widths 1 to 16) equals the exact best-first
  search's on 200 prompts (the default width is the smallest reaching 95%).

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N_PROMPTS = 10_000


def rnn(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("rnn")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rnncli"]
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as feed:
        return subprocess.run(cmd + list(args), stdin=feed, capture_output=True, text=True, check=True)


def timed(*args: str, stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    rnn(*args, stdin=stdin)
    return time.perf_counter() - t0


def train(config: str, out: Path, pieces: bool) -> tuple[str, dict]:
    extra = ["--set", "tokenizer.units=pieces"] if pieces else []
    done = rnn("train", config, "--format", "json", "--quiet", "--set", f"checkpoint.dir={out}", *extra)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return str(out), summary


def prompts(n: int, seed: int = 0) -> list[str]:
    """Beginnings (1 to 8 words) of random lines of the bundled corpus (as bench_predict)."""
    lines = []
    for path in sorted((ROOT / "data" / "train").glob("*.txt")):
        lines += [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    return [" ".join(w[: rng.randint(1, min(8, len(w)))]) for w in (rng.choice(lines) for _ in range(n))]


def width_agreement(ckpt: str, n: int = 200) -> None:
    import numpy as np

    import rnncli
    from rnncli.generate import read_contexts
    from rnncli.wordsearch import exact_search, log_probs64, search

    m = rnncli.load(ckpt)
    model = m.forward
    contexts = [m._context(m.tokenize_prompt(p)) for p in prompts(n, seed=1)]
    state, top = read_contexts(model, contexts)
    lp0 = log_probs64(model, top)
    exact = []
    for q in range(n):
        st = [tuple(a[q : q + 1] for a in layer) for layer in state]
        exact.append([w for w, _ in exact_search(model, m.pieces, st, lp0[q], 5)])
    for width in (1, 2, 4, 8, 16):
        t0 = time.perf_counter()
        found = search(model, m.pieces, state, lp0, 5, width=width)
        took = time.perf_counter() - t0
        same = np.mean([[w for w, _ in f] == e for f, e in zip(found, exact)])
        print(f"width {width:2d}: top 5 equal to the exact search for {same:.1%} of {n} prompts ({took:.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    ap.add_argument("--test", default=str(ROOT / "data" / "test.txt"))
    ap.add_argument("--words-ckpt")
    ap.add_argument("--pieces-ckpt")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--width", action="store_true", help="measure the search width against the exact search")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {}
        for kind, given in (("words", args.words_ckpt), ("pieces", args.pieces_ckpt)):
            if given:
                runs[kind] = (given, None)
            else:
                runs[kind] = train(args.config, tmp / kind, kind == "pieces")
        print(f"test text {args.test}")
        figures = {}
        for kind, (ckpt, _) in runs.items():
            out = json.loads(rnn("eval", "-c", ckpt, args.test, "--keystrokes", "--format", "json").stdout)
            figures[kind] = out
            ks = out["keystrokes"]["saving_rate"]
            print(
                f"{kind:6s}  perplexity {out['perplexity']:9.2f}  top1 {out['top1']:.4f}  top5 {out['top5']:.4f}  "
                f"oov_rate {out['oov_rate']:.4f}  keystroke saving {ks:.4f}  "
                f"({out['tokens']} words{', ' + str(out['units']) + ' units' if 'units' in out else ''})"
            )
            print(f"        rnn eval: {json.dumps(out, ensure_ascii=False)}")
        gain = figures["pieces"]["keystrokes"]["saving_rate"] - figures["words"]["keystrokes"]["saving_rate"]
        print(f"keystroke saving, pieces - words: {gain * 100:+.1f} points (target >= +5)")
        print(f"top1, pieces - words: {(figures['pieces']['top1'] - figures['words']['top1']) * 100:+.1f} points")
        if not args.skip_speed:
            speed(runs, tmp, args.repeat)
        if args.width:
            width_agreement(runs["pieces"][0])


def speed(runs: dict, tmp: Path, repeat: int) -> None:
    stdin = tmp / "prompts.txt"
    stdin.write_text("\n".join(prompts(N_PROMPTS)) + "\n", encoding="utf-8")
    one = tmp / "one.txt"
    one.write_text("sentindo-se\n", encoding="utf-8")
    corpus = [str(p) for p in sorted((ROOT / "data" / "train").glob("*.txt"))]
    rate = {}
    for kind, (ckpt, _) in runs.items():
        base = statistics.median(timed("predict", "-c", ckpt, "-", stdin=str(one)) for _ in range(repeat))
        full = statistics.median(timed("predict", "-c", ckpt, "-", stdin=str(stdin)) for _ in range(repeat))
        words = json.loads(rnn("eval", "-c", ckpt, *corpus, "--format", "json").stdout)["tokens"]
        ev = statistics.median(timed("eval", "-c", ckpt, *corpus) for _ in range(repeat))
        rate[kind] = (N_PROMPTS / max(full - base, 1e-9), words / ev)
        print(f"{kind:6s}  predict {rate[kind][0]:8.0f} prompts/s after start-up   eval {rate[kind][1]:8.0f} words/s")
    print(f"predict, pieces / words: {rate['pieces'][0] / rate['words'][0]:.2f} (target >= 0.25)")
    print(f"eval, pieces / words: {rate['pieces'][1] / rate['words'][1]:.2f} (target >= {1 / 1.6:.2f})")
    summaries = {k: s for k, (_, s) in runs.items() if s is not None}
    if len(summaries) == 2:
        per_word = _units_per_word(runs["pieces"][0])
        w = summaries["words"]["tokens_per_sec"]
        p = summaries["pieces"]["tokens_per_sec"] / per_word
        print(
            f"training: words {w:.0f} words/s, pieces {p:.0f} words/s ({per_word:.3f} units a word): "
            f"pieces / (words / units a word) = {p / (w / per_word):.2f} (target >= 0.9)"
        )


def _units_per_word(ckpt: str) -> float:
    import rnncli

    m = rnncli.load(ckpt)
    words = m.tokens([str(p) for p in sorted((ROOT / "data" / "train").glob("*.txt"))])
    return len(m.pieces.encode(words)[0]) / len(words)


if __name__ == "__main__":
    main()
