"""`rnn fill`: the words that best fill the blanks of each line, judged by both sides."""

from __future__ import annotations

import click

from .. import strictjson
from .common import checkpoint_option, errors_option, format_option, one_line, prob, reports_errors, usage
from .streams import Failed, answer_lines, open_model, prompt_batches, reading_of


@click.command()
@click.argument("lines", nargs=-1)
@checkpoint_option
@click.option("--input", "input_file", metavar="FILE", help="Read lines from FILE, one per line ('-' = stdin).")
@click.option(
    "--top-k", "-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="How many fills to show."
)
@format_option(
    "text: 'word prob, ...' (words of several blanks joined by ' | '); json: one object per line, in input "
    "order; tsv: line<TAB>words<TAB>prob rows.",
    tsv=True,
)
@click.option(
    "--shortlist",
    type=click.IntRange(min=1),
    default=None,
    metavar="S",
    help="Candidates scored per blank: the S most probable after the left side, and (with a backward model) "
    "the S most probable before the right side  [default: 500, or 150 with two directions: measured, see README]",
)
@click.option(
    "--beam",
    type=click.IntRange(min=1),
    default=None,
    metavar="W",
    help="With several blanks in a line: partial fills kept from one blank to the next (a line with one "
    "blank is filled exactly, whatever W)  [default: 8]",
)
@click.option(
    "--blank",
    "marker",
    metavar="TEXT",
    default=None,
    help="The blank marker, taken literally (e.g. '[MASK]')  [default: three or more underscores, ___]",
)
@click.option("--show-unk", is_flag=True, help="Also offer <unk> and <eos> as fills.")
@errors_option
@reports_errors
def fill(lines, checkpoint, input_file, k, fmt, shortlist, beam, marker, show_unk, errors):
    """Print the words that best fill the blank (___) of each LINE, best first.

    A line is one sentence; a blank is three or more underscores (or --blank
    TEXT) and needs words on both sides.  Each candidate w is ranked by the
    probability of the whole sentence with w in the blank, read left to right
    and, when the checkpoint has a backward model, right to left too (the
    product of the two).  Only a shortlist of candidates is scored, so the
    probabilities shown are normalised over the shortlist, not over the whole
    vocabulary.  Several blanks in a line are filled jointly (beam search).
    Lines come from the arguments, from stdin (none or '-') or from --input
    FILE.  A line that cannot be filled (no blank, empty) is named on stderr
    (with --format json: a record with an `error` key and its line_number)
    and the lines after it are filled too; the exit status is then 2.
    """
    if marker is not None and not marker.strip():
        raise usage("--blank needs a marker that is not empty or blank")
    model = open_model(checkpoint)
    opts = {"shortlist": shortlist, "beam": beam, "blank": marker, "show_unk": show_unk, "errors": "keep"}
    model.fill_sizes(shortlist, beam)  # a beam that cannot fit is refused before any line is read
    from_args = bool(lines) and lines != ("-",)
    source = "argument" if from_args else ("stdin line" if input_file in (None, "-") else f"--input {input_file} line")
    many = len(lines) != 1 or lines == ("-",)

    def answer(run: list[str], first: int) -> list:
        out = []
        for i, (line, found) in enumerate(zip(run, model.fill(run, k, **opts))):
            if isinstance(found, Exception):  # named in its place; the lines after it are filled too
                where = f"{source} {first + i} " if many else ""
                out.append(Failed(line, first + i, f"{where}{one_line(line)[:60]!r}: {found}"))
            else:
                out.extend(_fill_rows(found, fmt, many, model.path))
        return out

    batches = prompt_batches(lines, input_file, reading_of(model, errors))
    answer_lines(batches, answer, fmt=fmt, many=many, key="line", model_path=model.path, done_word="filled")


def _fill_rows(found, fmt: str, many: bool, where: str) -> list[str]:
    """Output lines for one filled line: text, one JSON object, or TSV rows."""
    if fmt == "json":
        from dataclasses import asdict

        return [strictjson.dumps(dict(asdict(found), checkpoint=where), ensure_ascii=False)]
    if fmt == "tsv":
        return [f"{one_line(found.line)}\t{' '.join(f.words)}\t{f.prob:.6g}" for f in found]
    shown = ", ".join(f"{' | '.join(f.words)} {prob(f.prob)}" for f in found)
    return [f"{one_line(found.line)}\t{shown}" if many else shown]
