"""Perplexity of an exported ``.onnx`` model on ``rnn tokenize`` output, without rnn (issue 21, acceptance 2).

    rnn tokenize -c CKPT TEXT > toks.txt
    python benchmarks/onnx_perplexity.py model.onnx toks.txt [--window 256] [--top1]

Reads only the two files: the vocabulary comes from the model's metadata (``rnn.vocab``, a JSON list in
id order), the tokens from the tokenizer's output (one sentence per line, tokens separated by spaces,
``<unk>`` already substituted, the ``<eos>`` that ends each line not printed). The stream is scored as
``rnn eval`` scores it with its default ``--batch-size 1``::

    <eos> w1 w2 ... <eos> w1 ... <eos>      every token after the first is predicted,
          ^  predicted from the ones before  <eos> included, from a zero state carried
                                             through the whole text, window by window

and the script prints the perplexity (exp of the mean negative log-probability over the predicted
tokens), the token count and, with ``--top1``, the next-word top-1 accuracy as ``rnn eval`` counts it:
the share of predicted tokens that are the most probable word other than ``<unk>`` (which ``rnn
predict`` never offers; a ``<unk>`` target is never a hit), ties going to the lowest id. Needs numpy,
onnx and onnxruntime; it deliberately does not import rnncli.

A word-piece model (metadata ``rnn.units`` = ``pieces``) reads ``rnn tokenize --pieces`` output, and its
perplexity is per word, as ``rnn eval`` reports it (Pimentel & Meister 2024): a word's probability is
the product of its units' and of the boundary after it (the next unit begins a word: a piece that starts
with ``▁``, or ``<eos>`` or ``<unk>``), divided by the boundary before it.  Over the stream the
boundaries cancel wherever a word follows a word; a word that follows ``<eos>`` or ``<unk>`` divides by
P(a word begins), the sum of the probabilities of the units that begin one.  The count is of words (the
units that begin one, ``<eos>`` included); ``--top1`` is for word models only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import onnx
import onnxruntime as ort

EOS, UNK = "<eos>", "<unk>"


WORD_MARK = "\u2581"


def read_vocab(path: str) -> tuple[list[str], str]:
    """The vocabulary in id order, from the model's ``rnn.vocab`` metadata, and its units (words or pieces)."""
    model = onnx.load(path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "rnn.vocab" not in meta:
        sys.exit(f"{path}: no rnn.vocab in the metadata; not a file written by `rnn export`")
    return json.loads(meta["rnn.vocab"]), meta.get("rnn.units", "words")


def read_ids(path: str, vocab: list[str]) -> np.ndarray:
    """``<eos>``, then each line's tokens followed by ``<eos>``, as ids (N,)."""
    index = {token: i for i, token in enumerate(vocab)}
    eos, unk = index[EOS], index.get(UNK)
    ids = [eos]
    with open(path, encoding="utf-8") as f:
        for line in f:
            for token in line.split():
                i = index.get(token, unk)
                if i is None:
                    sys.exit(f"{path}: {token!r} is not in the vocabulary and it has no {UNK}")
                ids.append(i)
            ids.append(eos)
    return np.array(ids, dtype=np.int64)


def score(
    model_path: str, ids: np.ndarray, window: int, threads: int, unk: int | None, begins: np.ndarray | None = None
) -> tuple[float, int, int]:
    """(sum of negative log-probs, predicted tokens, top-1 hits) of ids[1:] given the tokens before;
    with ``begins`` ((V,) bool: the units that begin a word) the per-word sum and the word count."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    state_names = [n for n in ("h0", "c0") if n in inputs]
    layers, hidden = inputs["h0"].shape[0], inputs["h0"].shape[2]
    state = {n: np.zeros((layers, 1, hidden), dtype=np.float32) for n in state_names}  # (L, 1, H)
    outputs = ["log_probs"] + [n[0] + "n" for n in state_names]
    nll, hits, n, words = 0.0, 0, len(ids) - 1, 0
    for lo in range(0, n, window):
        x = ids[lo : min(lo + window, n)]  # (T,) inputs
        y = ids[lo + 1 : lo + 1 + len(x)]  # (T,) the tokens they predict
        log_probs, *new_state = session.run(outputs, {"input_ids": x[:, None], **state})  # (T, 1, V)
        log_probs = log_probs[:, 0, :]  # (T, V)
        nll -= float(log_probs[np.arange(len(y)), y].astype(np.float64).sum())
        if begins is not None:  # a word after <eos> or <unk>: divide by P(a word begins)
            fresh = begins[y] & np.isin(x, [i for i in (ids[0], unk) if i is not None])
            lp = log_probs[fresh].astype(np.float64)  # (n, V)
            top = lp.max(axis=1, keepdims=True)
            nll += float((top[:, 0] + np.log(np.exp(lp[:, begins] - top).sum(axis=1))).sum())
            words += int(begins[y].sum())
        if unk is not None:
            log_probs[:, unk] = -np.inf  # never offered, so never the first choice
        hits += int(((log_probs.argmax(axis=1) == y) & (y != unk)).sum())
        state = dict(zip(state_names, new_state))
    return nll, (n if begins is None else words), hits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an .onnx file written by `rnn export`")
    parser.add_argument("tokens", help="the output of `rnn tokenize` (one sentence per line)")
    parser.add_argument("--window", type=int, default=256, help="steps per onnxruntime call (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    parser.add_argument("--top1", action="store_true", help="also print the next-word top-1 accuracy")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1")
    vocab, units = read_vocab(args.model)
    ids = read_ids(args.tokens, vocab)
    if len(ids) < 2:
        sys.exit(f"{args.tokens}: no tokens to score")
    begins = None
    if units == "pieces":
        if args.top1:
            parser.error("--top1 is for word models (a piece model's top-1 is of whole words: rnn eval)")
        begins = np.array([t.startswith(WORD_MARK) or t in (EOS, UNK) for t in vocab])
    unk = vocab.index(UNK) if UNK in vocab else None
    nll, n, hits = score(args.model, ids, args.window, args.threads, unk, begins)
    result = {"tokens": n, "cross_entropy": nll / n, "perplexity": math.exp(nll / n)}
    if args.top1:
        result["top1"] = hits / n
    if args.format == "json":
        print(json.dumps(result))
    else:
        print(f"tokens {n}  perplexity {result['perplexity']:.6f}" + (f"  top1 {hits / n:.4f}" if args.top1 else ""))


if __name__ == "__main__":
    main()
