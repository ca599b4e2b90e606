"""`rnn predict`: the next words of prompts, a word completed, a prompt continued (sampled or by
beam search), each answer formatted for text, JSON or TSV."""

from __future__ import annotations

import json
import math
import sys

import click

from .. import strictjson
from .common import (
    FiniteFloat,
    checkpoint_option,
    emit,
    errors_option,
    format_option,
    one_line,
    prob,
    reports_errors,
    usage,
)
from .streams import answer_lines, open_model, prompt_batches, reading_of


@click.command()
@click.argument("prompts", nargs=-1)
@checkpoint_option
@click.option(
    "--input",
    "input_file",
    metavar="FILE",
    help="Read prompts from FILE, one per line ('-' = stdin).",
)
@click.option(
    "--top-k", "-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="How many next words to show."
)
@click.option(
    "--min-prob",
    type=FiniteFloat(0, 1),
    default=0.0,
    metavar="P",
    help="Leave out words below P (a prompt may then show fewer than k, or an empty line): the probability "
    "shown, i.e. P(word | prompt), or with --complete the share among the matching words (match_prob, the "
    "first figure shown).",
)
@format_option("json: one object per prompt per line, in input order; tsv: prompt<TAB>word<TAB>prob rows.", tsv=True)
@click.option("--show-unk", is_flag=True, help="Also offer <unk> and <eos> as predictions (and <unk> when generating).")
@click.option(
    "--generate",
    "-g",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Continue each prompt by N sampled words (N >= 1) instead of listing the top words.",
)
@click.option(
    "--temperature",
    "-t",
    type=FiniteFloat(min=0),
    default=None,
    metavar="T",
    help="Sampling temperature for --generate (0 = always the most likely word)  [default: 1.0]",
)
@click.option(
    "--top-k-sampling",
    type=click.IntRange(min=0),
    default=0,
    metavar="K",
    help="With --generate: draw only among the K most probable words (0 = all).",
)
@click.option(
    "--top-p",
    type=FiniteFloat(0, 1, min_open=True),
    default=1.0,
    metavar="P",
    help="With --generate: draw only among the fewest most probable words whose mass reaches P (nucleus).",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed for --generate (same seed, same text).")
@click.option("--stop-at-eos", is_flag=True, help="With --generate or --beam: end a continuation at the sentence end.")
@click.option(
    "--beam",
    type=click.IntRange(min=1),
    default=None,
    metavar="W",
    help="With --generate N: beam search, printing the W most probable continuations and their log-probabilities.",
)
@click.option(
    "--complete",
    is_flag=True,
    help="The prompt's last word is unfinished: show the k most probable vocabulary words that start with it, "
    "ranked by P(word | the words before), matched without regard to case or accents. text: 'word p_match "
    "(p)' where p_match is the share among the matching words and p the probability over the vocabulary.",
)
@click.option(
    "--match-accents",
    is_flag=True,
    help="With --complete: accents must match too ('voce' then no longer finds 'você').",
)
@click.option(
    "--interactive",
    "-i",
    is_flag=True,
    help="Prompt at the terminal, one line at a time [default when stdin is a terminal and no prompt is given].",
)
@errors_option
@reports_errors
def predict(
    prompts,
    checkpoint,
    input_file,
    k,
    min_prob,
    fmt,
    show_unk,
    generate,
    temperature,
    top_k_sampling,
    top_p,
    seed,
    stop_at_eos,
    beam,
    complete,
    match_accents,
    interactive,
    errors,
):
    """Print the most likely next words after each PROMPT, complete its last word (--complete), or continue
    it (--generate, --beam).

    Prompts come from the arguments, from stdin (none or '-', one per line)
    or from --input FILE, and run through the network as minibatches.  A prompt
    is read as the start of a sentence; an empty prompt asks for a sentence's
    first word.
    """
    o = dict(locals())
    interactive = _check(o)
    model = open_model(checkpoint)
    model.check_forward()
    if beam:
        beam = model.beam_width(beam, generate)
    answer = _answerer(model, o, beam)
    if interactive:
        _interactive(lambda prompts, first: answer(prompts, first, False))
        return
    many = len(prompts) != 1 or prompts == ("-",)
    batches = prompt_batches(prompts, input_file, reading_of(model, errors))
    answer_lines(
        batches,
        lambda run, first: answer(run, first, many),
        fmt=fmt,
        many=many,
        key="prompt",
        model_path=model.path,
        done_word="answered",
    )


def _check(o: dict) -> bool:
    """Refuse the options that do nothing together (exit 2); returns whether to read the terminal."""
    prompts, input_file, min_prob, show_unk, generate = (
        o["prompts"], o["input_file"], o["min_prob"], o["show_unk"], o["generate"]
    )  # fmt: skip
    temperature, top_k_sampling, top_p, seed, stop_at_eos, beam = (
        o["temperature"], o["top_k_sampling"], o["top_p"], o["seed"], o["stop_at_eos"], o["beam"]
    )  # fmt: skip
    complete, match_accents, interactive = o["complete"], o["match_accents"], o["interactive"]
    sampling = {
        "--temperature": temperature is not None,
        "--top-k-sampling": top_k_sampling > 0,
        "--top-p": top_p < 1.0,
        "--seed": seed is not None,
    }
    if not generate:
        given = [name for name, on in sampling.items() if on] + (["--beam"] if beam else [])
        given += ["--stop-at-eos"] if stop_at_eos else []
        if given:
            raise usage(f"{given[0]} only applies with --generate N")
    elif beam:
        given = [name for name, on in sampling.items() if on]
        if given:
            raise usage(f"--beam searches for the most probable continuations; it does not sample: drop {given[0]}")
        if min_prob > 0:
            raise usage("--min-prob applies to the top words, not to --generate")
    elif min_prob > 0:
        raise usage("--min-prob applies to the top words, not to --generate")
    if generate and click.get_current_context().get_parameter_source("k") != click.core.ParameterSource.DEFAULT:
        raise usage(
            "--top-k lists the next words; with --generate it does nothing: use --top-k-sampling K to sample "
            "among the K most probable words, or --beam W for W continuations"
        )
    if match_accents and not complete:
        raise usage("--match-accents only applies with --complete")
    if complete and generate:
        raise usage("--complete finishes the prompt's last word; it does not go with --generate")
    if complete and show_unk:
        raise usage("--complete offers vocabulary words only: <unk> and <eos> never match; drop --show-unk")
    if interactive and (prompts or input_file is not None):
        raise usage("--interactive reads prompts from the terminal: give no prompt and no --input")
    if not interactive and not prompts and input_file is None and sys.stdin.isatty():
        interactive = True
    return interactive


def _answerer(model, o: dict, beam: int | None):
    """The function that answers a run of prompts (their first line number, and whether several
    prompts are answered) with output lines, in the mode the options ask for."""
    fmt, where = o["fmt"], model.path
    exclude_unk = not o["show_unk"]

    def answer(prompts: list[str], first: int, many: bool) -> list[str]:
        if o["complete"]:
            found = model.complete(prompts, o["k"], o["min_prob"], o["match_accents"])
            return _completions(found, first, many, fmt, where)
        if beam:
            found = model.beam(prompts, o["generate"], beam, stop_at_eos=o["stop_at_eos"], show_unk=not exclude_unk)
            return _beams(prompts, found, many, fmt, where)
        if o["generate"]:
            found = model.generate(
                prompts,
                o["generate"],
                temperature=1.0 if o["temperature"] is None else o["temperature"],
                top_k=o["top_k_sampling"],
                top_p=o["top_p"],
                seed=o["seed"],
                stop_at_eos=o["stop_at_eos"],
                show_unk=not exclude_unk,
                details=True,
                first_line=first - 1,  # each prompt's generator is seeded by its line number
            )
            return _generations(found, fmt, where)
        found = model.predict(prompts, o["k"], o["min_prob"], show_unk=not exclude_unk)
        return _predictions(prompts, found, many, fmt, where)

    return answer


def _predictions(prompts: list[str], rows, many: bool, fmt: str, where: str) -> list[str]:
    out = []
    if fmt == "json":
        # built by hand: this is the path of 10,000s of prompts a second (strict JSON, as strictjson writes it)
        tail = f', "checkpoint": {json.dumps(where, ensure_ascii=False)}}}'
        words: dict[str, str] = {}
        for prompt, row in zip(prompts, rows):
            shown = []
            for p in row:
                w = words.get(p.word)
                if w is None:
                    w = words[p.word] = json.dumps(p.word, ensure_ascii=False)
                shown.append(f'{{"word": {w}, "prob": {repr(p.prob) if math.isfinite(p.prob) else "null"}}}')
            out.append(
                f'{{"prompt": {json.dumps(prompt, ensure_ascii=False)}, "predictions": [{", ".join(shown)}]{tail}'
            )
    elif fmt == "tsv":
        for prompt, row in zip(prompts, rows):
            field = one_line(prompt)
            out.extend(f"{field}\t{p.word}\t{p.prob:.6g}" for p in row)
    else:
        for prompt, row in zip(prompts, rows):
            shown = ", ".join(f"{p.word} {prob(p.prob)}" for p in row)
            out.append(f"{one_line(prompt)}\t{shown}" if many else shown)
    return out


def _completions(found, first: int, many: bool, fmt: str, where: str) -> list[str]:
    from dataclasses import asdict

    out = []
    for number, c in enumerate(found, start=first):
        if c.matches == 0 or (c.matches is None and not c.match_mass):  # None: a word-piece model
            at = f" (prompt {number})" if many else ""
            known = "of the vocabulary " if c.matches == 0 else "the model can spell "
            click.echo(f"rnn: no word {known}starts with {c.prefix!r}{at}", err=True)
        if fmt == "json":
            out.append(strictjson.dumps(dict(asdict(c), checkpoint=where), ensure_ascii=False))
        elif fmt == "tsv":
            out.extend(f"{one_line(c.prompt)}\t{w.word}\t{w.match_prob:.6g}\t{w.prob:.6g}" for w in c)
        else:
            shown = ", ".join(f"{w.word} {prob(w.match_prob)} ({prob(w.prob)})" for w in c)
            out.append(f"{one_line(c.prompt)}\t{shown}" if many else shown)  # empty when none is left
    return out


def _generations(found, fmt: str, where: str) -> list[str]:
    from dataclasses import asdict

    if fmt == "json":
        return [strictjson.dumps(dict(asdict(g), checkpoint=where), ensure_ascii=False) for g in found]
    if fmt == "tsv":
        return [f"{one_line(g.prompt)}\t{one_line(g.text)}" for g in found]
    return [g.text for g in found]


def _beams(prompts: list[str], found, many: bool, fmt: str, where: str) -> list[str]:
    from dataclasses import asdict

    out = []
    for prompt, beams in zip(prompts, found):
        if fmt == "json":
            record = {"prompt": prompt, "beams": [asdict(b) for b in beams], "checkpoint": where}
            out.append(strictjson.dumps(record, ensure_ascii=False))
            continue
        for b in beams:
            row = f"{one_line(b.text)}\t{b.logprob:.4f}"
            out.append(f"{one_line(prompt)}\t{row}" if many or fmt == "tsv" else row)
    return out


def _interactive(answer) -> None:
    """Read a line at a time from the terminal (readline editing and history) and answer it."""
    try:
        import readline  # noqa: F401 (imported for its side effect: line editing and history in input())
    except ImportError:  # pragma: no cover (Windows without pyreadline)
        pass
    click.echo("type a prompt and Enter; Ctrl-D to quit", err=True)
    # the "> " prompt is talk: on a terminal input() shows it (readline redraws it); when stdout is
    # redirected it goes to stderr, so that stdout holds only the answers
    on_terminal = sys.stdout.isatty()
    number = 0
    while True:
        try:
            if not on_terminal:
                click.echo("> ", err=True, nl=False)
            prompt = input("> " if on_terminal else "")
        except EOFError:
            click.echo("", err=True)
            return
        except KeyboardInterrupt:
            click.echo("", err=True)
            continue
        number += 1  # a prompt's number seeds its generator, as a line's does
        for line in answer([prompt], number):
            emit(line)
