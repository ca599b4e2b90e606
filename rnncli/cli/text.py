"""`rnn score`, `rnn eval` and `rnn tokenize`: what a model makes of a text."""

from __future__ import annotations

import sys

import click

from .. import strictjson
from .common import (
    EXIT_FAILURE,
    FiniteFloat,
    _fail,
    checkpoint_option,
    emit,
    errors_option,
    format_option,
    one_line,
    plural,
    prob,
    progress_bar,
    reports_errors,
    usage,
    write_lines,
)
from .streams import PROMPT_BATCH, answer_lines, open_model, reading_of, text_files, text_sources


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@checkpoint_option
@format_option(
    "text: logprob<TAB>perplexity<TAB>line<TAB>words; json: one object per line; tsv: line<TAB>word<TAB>prob.", tsv=True
)
@errors_option
@reports_errors
def score(files, checkpoint, fmt, errors):
    """Score each line of FILES (stdin when none or '-'): log-probability, perplexity, per-word probabilities.

    Each line is read as a sentence on its own (from a zero state, after an
    <eos>), its <eos> at the end included, so lines can be ranked against each
    other; low per-word probabilities point at surprising words.
    """
    files = text_files(files, "score")
    model = open_model(checkpoint)
    model.check_forward()
    reading = dict(reading_of(model, errors), bad_lines="mark")

    def batches():
        from ..data import file_line_batches, line_batches

        for name in files:
            if name == "-":
                yield from line_batches(getattr(sys.stdin, "buffer", sys.stdin), "stdin", PROMPT_BATCH, **reading)
            else:
                yield from file_line_batches(name, name, PROMPT_BATCH, **reading)

    def answer(lines: list[str], first: int) -> list[str]:
        return [row for s in model.score(lines) for row in _score_rows(s, fmt, model.path)]

    # lines of files: always a stream
    answer_lines(batches(), answer, fmt=fmt, many=True, key="line", model_path=model.path, done_word="scored")


def _score_rows(s, fmt: str, where: str) -> list[str]:
    """Output lines for one scored line: text, one JSON object, or TSV rows."""
    if fmt == "json":
        words = [
            {"word": w.word, "prob": w.prob, "unk": True} if w.unk else {"word": w.word, "prob": w.prob}
            for w in s.words
        ]
        record = {"line": s.line, "tokens": s.tokens, "logprob": s.logprob, "perplexity": s.perplexity, "words": words}
        return [strictjson.dumps(dict(record, checkpoint=where), ensure_ascii=False)]
    if fmt == "tsv":
        return [f"{one_line(s.line)}\t{w.word}\t{w.prob:.6g}" for w in s.words]
    shown = ", ".join(f"{w.word} {prob(w.prob)}" for w in s.words)
    ppl = "n/a" if s.perplexity is None else f"{s.perplexity:.2f}"
    return [f"{s.logprob:.3f}\t{ppl}\t{one_line(s.line)}\t{shown}"]


def _share(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


@click.command("eval")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@checkpoint_option
@format_option("json: one object with every metric (and the gate result).")
@click.option(
    "--max-ppl",
    type=FiniteFloat(min=0),
    default=None,
    metavar="X",
    help="Gate: exit 1 when the perplexity is above X (a finite number >= 0).",
)
@click.option(
    "--min-top5",
    type=FiniteFloat(0, 1),
    default=None,
    metavar="Y",
    help="Gate: exit 1 when the top-5 next-word accuracy is below Y (0..1).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Score N pieces of the text at once: faster, every token still scored, but each piece after the "
    "first starts from a zero state; 1 carries the state through the whole text.",
)
@click.option(
    "--fill",
    "fill_blanks",
    is_flag=True,
    help="Also blank each word in turn and fill it from its sentence (both sides, as rnn fill): fill top-1/top-5 "
    "beside the next-word top-1/top-5 of the same words.",
)
@click.option(
    "--fill-sample",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --fill: blank only N words, drawn with a fixed seed (the same N, the same words).",
)
@click.option(
    "--keystrokes",
    is_flag=True,
    help="Also measure word completion: the keystroke saving rate when, before each letter, the most probable "
    "words that start with the letters typed are shown (--suggestions of them) and the right one is picked "
    "with one keystroke as soon as it appears (defined in the README).",
)
@click.option(
    "--suggestions",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --keystrokes: how many words are shown  [default: 3]",
)
@errors_option
@reports_errors
def evaluate_cmd(
    files, checkpoint, fmt, max_ppl, min_top5, batch_size, fill_blanks, fill_sample, keystrokes, suggestions, errors
):
    """Score text (FILES, or stdin when none or '-') with a trained model.

    Prints tokens, cross-entropy, perplexity, top-1/top-5 next-word accuracy and
    the OOV rate.  Every token is predicted, <eos> included, with the hidden
    state carried through the whole text.
    """
    from dataclasses import asdict

    model = open_model(checkpoint)
    if fill_sample is not None and not fill_blanks:
        raise usage("--fill-sample only applies with --fill")
    if suggestions is not None and not keystrokes:
        raise usage("--suggestions only applies with --keystrokes")
    if keystrokes and model.forward is None:
        raise usage("--keystrokes completes words from the words before them: it needs a forward model")
    sources, name = text_sources(files, "eval", reading_of(model, errors))
    with progress_bar("filling blanks", "word") as filling, progress_bar("typing the text", "token") as typing:
        result = model.evaluate(
            sources,
            batch_size=batch_size,
            fill=fill_blanks,
            fill_sample=fill_sample,
            keystrokes=keystrokes,
            suggestions=suggestions or 3,
            fill_progress=filling,
            keystroke_progress=typing,
            name=name,
        )
    out = _without_nones(asdict(result))
    failures = _gates(out, max_ppl, min_top5)
    if fmt == "json":
        # an infinite perplexity (a word the model gives probability 0) is null: JSON has no Infinity
        emit(strictjson.dumps({**out, "checkpoint": model.path}))
    else:
        write_lines(_eval_lines(out))
    if failures:
        _fail(f"gate failed: {'; '.join(failures)}", EXIT_FAILURE)


def _gates(out: dict, max_ppl: float | None, min_top5: float | None) -> list[str]:
    """The gates' verdict, added to ``out`` as ``gate``; the reasons of those that failed."""
    failures = []
    if max_ppl is not None and not out["perplexity"] <= max_ppl:
        failures.append(f"perplexity {out['perplexity']:.2f} is above --max-ppl {max_ppl:g}")
    if min_top5 is not None and not out["top5"] >= min_top5:
        failures.append(f"top-5 accuracy {out['top5']:.4f} is below --min-top5 {min_top5:g}")
    if max_ppl is not None or min_top5 is not None:
        gate = {"max_ppl": max_ppl, "min_top5": min_top5}
        out["gate"] = {key: value for key, value in gate.items() if value is not None}
        out["gate"]["passed"] = not failures
        if failures:
            out["gate"]["reason"] = "; ".join(failures)
    return failures


def _without_nones(record: dict) -> dict:
    """The record without the keys that do not apply (None), in nested records too."""
    return {k: _without_nones(v) if isinstance(v, dict) else v for k, v in record.items() if v is not None}


def _eval_lines(out: dict) -> list[str]:
    words = f"{out['tokens']} words in {out['units']} word pieces" if "units" in out else str(out["tokens"])
    lines = [
        f"tokens       {words}",
        f"loss         {out['loss']:.4f} nats/word ({out['bits_per_word']:.3f} bits/word)",
        f"perplexity   {out['perplexity']:.2f}",
        f"top1         {out['top1']:.4f}",
        f"top5         {out['top5']:.4f}",
        f"oov_rate     {out['oov_rate']:.4f}",
    ]
    if out["direction"] == "backward":
        lines.append("direction    backward (each word predicted from the words after it)")
    if "backward" in out:
        back = out["backward"]
        lines.append(
            f"backward     perplexity {back['perplexity']:.2f}, top1 {back['top1']:.4f}, top5 {back['top5']:.4f}"
        )
    if "fill" in out:
        f = out["fill"]
        lines.append(f"fill         {f['positions']} words blanked, filled from {' and '.join(f['directions'])}")
        lines.append(f"fill top1    {f['top1']:.4f}  (next word, left only: {_share(f['next_word_top1'])})")
        lines.append(f"fill top5    {f['top5']:.4f}  (next word, left only: {_share(f['next_word_top5'])})")
    if "keystrokes" in out:
        ks = out["keystrokes"]
        lines.append(
            f"keystrokes   saving rate {ks['saving_rate']:.4f} with {plural(ks['suggestions'], 'suggestion')} "
            f"({plural(ks['keystrokes'], 'keystroke')} for {plural(ks['letters'], 'letter')} of "
            f"{plural(ks['words'], 'word')})"
        )
    return lines


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@checkpoint_option
@errors_option
@click.option(
    "--pieces",
    "show_pieces",
    is_flag=True,
    help="A word-piece model: print the pieces the network reads (a word's first piece starts with ▁).",
)
@reports_errors
def tokenize(files, checkpoint, errors, show_pieces):
    """Print text (FILES, or stdin) exactly as the model sees it.

    One sentence per line (each <eos> ends a line and is not printed), tokens
    separated by single spaces, <unk> for every word outside the vocabulary, so
    that other tools (an n-gram toolkit, grep, a spreadsheet) count the same tokens.
    A word-piece model has no word outside it; --pieces shows how it spells each word.
    """
    model = open_model(checkpoint)
    if show_pieces and model.pieces is None:
        raise usage("--pieces: this checkpoint reads whole words (tokenizer.units: words); it has no pieces to show")
    # each file on its own, as eval and train read them: a file's last line never runs into the next
    sources, _ = text_sources(files, "tokenize", reading_of(model, errors))
    sentence: list[str] = []
    out = []
    for token in model.iter_tokenized(sources):
        if token == "<eos>":
            out.append(" ".join(sentence))
            sentence = []
            if len(out) >= 1024:
                write_lines(out)
                out = []
        else:
            sentence.append(" ".join(model.spell(token)) if show_pieces else token)
    if sentence:
        out.append(" ".join(sentence))
    write_lines(out)
