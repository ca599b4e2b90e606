"""Benchmark of `rnn fill`: how large the shortlist must be, how fast a line is filled, which
combination of the two directions fills best.  Measured in one run on one checkpoint.

    python benchmarks/bench_fill.py [--checkpoint DIR] [--text data/test.txt] [--lines 200]

Needs a trained model (`rnn train configs/default.yaml`, or --checkpoint; a `model.direction:
both` checkpoint also measures the backward model and the combinations).  Prints:

* shortlist: for --lines blanks (words of --text, drawn with seed 0, each blanked in its
  sentence), the share whose top 5 fills (in order) and whose top fill are those of the exact
  ranking over the whole vocabulary, for each shortlist size S, per direction used; and the
  smallest S at which every top 5 agrees (the default of `rnn fill`, DEFAULT_SHORTLIST, was
  chosen from these figures);
* speed: the median milliseconds of answering one one-blank line (tokenizing it, filling it with
  the CLI's defaults), over 100 lines of --text, model loading excluded (targets: under 50 ms for
  the default model, under 1 s for the Machado model);
* fill accuracy (`rnn eval --fill`'s figures) on --text: each direction alone, and with two
  directions their product and their mixture, beside the left-only next-word accuracy.

A benchmark, not a test: it asserts nothing and prints what it measured.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnncli.checkpoint import default_checkpoint  # noqa: E402
from rnncli.fill import (  # noqa: E402
    EVAL_SHORTLIST,
    blank_positions,
    blank_regex,
    default_shortlist,
    fill_accuracy,
    fill_lines,
    fill_one_blank,
    split_line,
)
from rnncli.infer import load_models  # noqa: E402

SIZES = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 700)


def blanks_of(ids: np.ndarray, eos_id: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """n (left, right) items: words of the stream blanked in their sentences, as eval --fill does."""
    bounds = np.flatnonzero(ids == eos_id)
    items = []
    for p in blank_positions(ids, eos_id, n, seed=0).tolist():
        before = bounds[bounds < p]
        start = int(before[-1]) + 1 if len(before) else 0
        after = bounds[bounds > p]
        end = int(after[0]) if len(after) else len(ids)
        items.append((ids[start:p], np.concatenate([ids[p + 1 : end], [eos_id]]).astype(np.int32)))
    return items


def shortlist_agreement(forward, backward, items, eos_id, exclude, vocab_size) -> None:
    exact = fill_one_blank(forward, backward, items, eos_id, shortlist=vocab_size, exclude=exclude)
    exact5 = [r.fills[:5] for r in exact]
    print("   S   top-5 same   top-1 same")
    first_all = None
    for size in SIZES:
        if size >= vocab_size:
            break
        got = fill_one_blank(forward, backward, items, eos_id, shortlist=size, exclude=exclude)
        same5 = np.mean([r.fills[:5] == e for r, e in zip(got, exact5)])
        same1 = np.mean([r.fills[0] == e[0] for r, e in zip(got, exact5)])
        print(f"{size:4d}   {same5:10.3f}   {same1:10.3f}")
        if first_all is None and same5 == 1.0:
            first_all = size
    print(f"smallest S with every top 5 exact: {first_all or 'none of those tried'}")


def one_line_ms(models, lines: list[str], shortlist: int) -> list[float]:
    pattern = blank_regex()
    v = models.vocab
    exclude = (v.unk_id, v.eos_id)
    times = []
    for line in lines:
        t0 = time.perf_counter()
        blanked = split_line(line, models.tokenizer, v, pattern)
        fill_lines(models.forward, models.backward, [blanked], v.eos_id, shortlist=shortlist, exclude=exclude)
        times.append(1000 * (time.perf_counter() - t0))
    return times


def test_lines(text: str, n: int) -> list[str]:
    """n one-blank lines: sentences of the text, one inner word replaced by ___ (seed 0)."""
    rng = np.random.default_rng(0)
    sentences = []
    for line in text.splitlines():
        for s in line.replace("!", ".").replace("?", ".").split(". "):
            words = s.split()
            if len(words) >= 4:
                sentences.append(words)
    out = []
    for k in range(n):
        words = list(sentences[k % len(sentences)])
        j = int(rng.integers(1, len(words) - 1))
        words[j] = "___"
        out.append(" ".join(words))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", "-c", default=None)
    ap.add_argument("--text", default=str(ROOT / "data" / "test.txt"))
    ap.add_argument("--lines", type=int, default=200, help="blanks for the shortlist measurement")
    ap.add_argument("--skip-shortlist", action="store_true")
    ap.add_argument("--shortlist", type=int, nargs="*", default=None, help="sizes to time [rnn fill's default]")
    ap.add_argument("--sample", type=int, default=0, help="fill accuracy on N sampled words (eval --fill-sample) [all]")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    models = load_models(default_checkpoint(args.checkpoint))
    v = models.vocab
    text = Path(args.text).read_text(encoding="utf-8")
    ids = v.encode(models.tokenizer.tokenize(text)).astype(np.int32)
    fwd, bwd = models.forward, models.backward
    directions = " and ".join(d for d, m in (("forward", fwd), ("backward", bwd)) if m is not None)
    print(f"checkpoint {models.ckpt.path}: vocabulary {len(v)}, {directions}")
    default = default_shortlist(fwd, bwd)
    print(
        f"text {args.text}: {len(ids)} tokens; shortlist: rnn fill's default {default}, eval --fill's {EVAL_SHORTLIST}"
    )

    runs = [(name, f, b) for name, f, b in (("forward", fwd, None), ("backward", None, bwd)) if f or b]
    if fwd is not None and bwd is not None:
        runs.append(("both (product)", fwd, bwd))
    if not args.skip_shortlist:
        items = blanks_of(ids, v.eos_id, args.lines)
        for name, f, b in runs:
            print(f"\n# shortlist against the exact ranking over the vocabulary, {len(items)} blanks, {name}")
            shortlist_agreement(f, b, items, v.eos_id, (v.unk_id, v.eos_id), len(v))

    lines = test_lines(text, 100)
    print(f"\n# speed: one one-blank line, median over {len(lines)} lines")
    for size in args.shortlist or [default]:
        one_line_ms(models, lines[:5], size)  # warm-up
        ms = one_line_ms(models, lines, size)
        print(f"shortlist {size:4d}: median {statistics.median(ms):.1f} ms, 90th percentile {sorted(ms)[89]:.1f} ms")

    if args.skip_accuracy:
        return
    which = f"{args.sample} words drawn with seed 0" if args.sample else "every word that is not <eos>"
    print(f"\n# fill accuracy on {args.text} ({which}; shortlist {EVAL_SHORTLIST})")
    print("directions           top1     top5   next-word top1   next-word top5")
    combos = [(name, f, b, "product") for name, f, b in runs]
    if fwd is not None and bwd is not None:
        combos.append(("both (mixture)", fwd, bwd, "mixture"))
    for name, f, b, how in combos:
        t0 = time.perf_counter()
        r = fill_accuracy(f, b, ids, v.eos_id, sample=args.sample, combine=how)
        secs = time.perf_counter() - t0
        n1 = "n/a" if r["next_word_top1"] is None else f"{r['next_word_top1']:.4f}"
        n5 = "n/a" if r["next_word_top5"] is None else f"{r['next_word_top5']:.4f}"
        print(f"{name:18s} {r['top1']:.4f}   {r['top5']:.4f}   {n1:>14s}   {n5:>14s}   ({secs:.1f} s)")


if __name__ == "__main__":
    main()
