"""Reading what a command answers: prompts and lines from the arguments, `--input FILE` or stdin,
texts from files and stdin; finding the model; answering a stream line by line."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import click

from .. import strictjson
from .common import plural, usage, write_lines

PROMPT_BATCH = 2048  # prompts per network batch when reading a stream


def prompt_batches(
    prompts: tuple[str, ...], input_file: str | None, reading: dict | None = None, bad_lines: str = "mark"
):
    """Batches of prompts: the arguments, `--input FILE`, or stdin (no prompt, '-', or `--input -`).

    Files and stdin go through `data.line_batches`, the reader `train`/`eval` share in spirit: gzip
    (files), the checkpoint's ``data.encoding``, and a bad line named by its number (``reading``
    holds ``encoding``, ``errors`` and ``warn``; strict UTF-8 when not given).  A line that is not
    valid text is an ``errors.BadLine`` in its place (``bad_lines="mark"``: the command names it and
    answers the others) or stops the reading (``"raise"``: a text read as a whole).
    """
    reading = dict(reading or {}, bad_lines=bad_lines)
    if input_file is not None and prompts:
        raise usage("give prompts as arguments or with --input FILE, not both")
    if prompts and prompts != ("-",):
        if "-" in prompts:
            raise usage("give prompts as arguments or '-' for stdin, not both")
        prompts = tuple(_argument_text(p, i, reading) for i, p in enumerate(prompts, start=1))
        for lo in range(0, len(prompts), PROMPT_BATCH):
            yield list(prompts[lo : lo + PROMPT_BATCH])
        return
    from ..data import file_line_batches, line_batches  # here: prompts given as arguments need no reader

    if input_file is not None and input_file != "-":
        yield from file_line_batches(input_file, f"--input {input_file}", PROMPT_BATCH, **reading)
        return
    yield from line_batches(getattr(sys.stdin, "buffer", sys.stdin), "stdin", PROMPT_BATCH, **reading)


def open_model(checkpoint: str | None):
    """The model a reading command uses (--checkpoint, $RNN_CHECKPOINT, the last run here), loaded;
    when the user did not name it, it is named on stderr if that is a terminal, so that a model left
    behind by another run cannot answer unnoticed."""
    from ..api import load
    from ..checkpoint import locate_checkpoint

    path, found_by = locate_checkpoint(checkpoint)
    model = load(path)
    if found_by is not None and sys.stderr.isatty():
        click.echo(f"rnn: model {model.path} (found through {found_by})", err=True)
    return model


def _decode_hint(encoding: str) -> str:
    """What to do about a file that is not valid text, for a command that reads with a checkpoint."""
    return f"the checkpoint reads {encoding}: convert the file, or pass --errors replace to go on with U+FFFD"


def _stdin_lines(reading: dict):
    """stdin's lines, read as prompt files are (``_reading``: data.encoding, --errors, a bad line named),
    each with its line break (the tokenizer joins pieces that have none)."""
    yield from (line + "\n" for batch in prompt_batches((), None, reading, "raise") for line in batch)


def text_files(files: tuple[str, ...], command: str) -> tuple[str, ...]:
    """The files a command reads its text from, '-' (stdin) among them at most once; none is stdin.
    A name that is no file is refused before anything is read, with the hint that text comes
    from files or stdin (`rnn score "some words"` reads no words)."""
    from ..data import _GLOB_CHARS
    from ..errors import DataError

    files = files or ("-",)
    if files.count("-") > 1:
        raise usage("stdin can be read once: give '-' once")
    for name in files:
        if name != "-" and not _GLOB_CHARS & set(name) and not os.path.exists(name):
            import shlex  # only for this message: not at every start

            raise DataError(
                f"{name}: no such file; rnn {command} reads its text from files or stdin, "
                f"e.g. echo {shlex.quote(name)} | rnn {command}"
            )
    return files


def text_sources(files: tuple[str, ...], command: str, reading: dict) -> tuple[list, str]:
    """The texts a command reads, each on its own as train reads files (gzip, the checkpoint's
    data.encoding, every name checked first), '-' or none for stdin through the line reader; and
    the name of what was read, for messages."""
    from ..data import read_lines, resolve_files

    files = text_files(files, command)
    encoding, errors = reading["encoding"], reading["errors"]
    hint = _decode_hint(encoding)
    paths = {name: resolve_files([name], command) for name in files if name != "-"}
    sources = []
    for name in files:
        if name == "-":
            sources.append(_stdin_lines(reading))
        else:
            sources.extend(read_lines(p, encoding, errors, hint) for p in paths[name])
    return sources, ("stdin" if files == ("-",) else ", ".join(files))


def _argument_text(arg: str, number: int, reading: dict) -> str:
    """A prompt given as an argument, read as lines of a file are: bytes that the system could not
    decode (kept by Python as lone surrogates) are decoded with the checkpoint's data.encoding, and
    what still fails is an error (--errors strict) or U+FFFD with a warning (--errors replace)."""
    if not any("\udc80" <= c <= "\udcff" for c in arg):
        return arg
    raw = os.fsencode(arg)
    encoding = reading.get("encoding", "utf-8")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        if reading.get("errors", "strict") == "strict":
            from ..errors import BadLine

            error = (
                f"argument {number} is not valid {encoding} (byte {e.start + 1}); fix it, or pass --errors replace "
                "to replace the bad bytes"
            )
            return BadLine(raw.decode(encoding, "replace"), error, number)
        if reading.get("warn"):
            reading["warn"](f"argument {number} is not valid {encoding}; its bad bytes were replaced (U+FFFD)")
        return raw.decode(encoding, "replace")


def reading_of(model, errors: str | None) -> dict:
    """How prompt files are decoded: the checkpoint's data.encoding, and --errors (or data.errors)."""
    data_cfg = model.config.get("data", {})
    return {
        "encoding": data_cfg.get("encoding", "utf-8"),
        "errors": errors or data_cfg.get("errors", "strict"),
        "warn": lambda text: click.echo(f"rnn: warning: {text}", err=True),
    }


@dataclass
class Failed:
    """A line of a stream that could not be answered: named in its place, and the stream goes on."""

    line: str
    number: int
    error: str


def answer_lines(batches, answer, *, fmt: str, many: bool, key: str, model_path: str, done_word: str) -> None:
    """Answer a stream of lines batch by batch, each batch's output written at once, in input order.

    ``answer(lines, first_number)`` returns the output lines of a run of readable lines, with a
    ``Failed`` in place of a line it could not answer; a line that could not be read as text
    (``data.BadLine``) is never given to it.  A failed line is named as it comes (stderr, after the
    output before it; with --format json a record with ``error`` and ``line_number`` in its place),
    and the exit status at the end says that some failed (2).
    """
    from itertools import groupby

    from ..errors import BadLine

    failed, seen = [], 0
    for batch in batches:
        out = []
        for bad, run in groupby(batch, key=lambda line: isinstance(line, BadLine)):
            run = list(run)
            items = [Failed(str(line), line.number, line.error) for line in run] if bad else answer(run, seen + 1)
            seen += len(run)
            for item in items:
                if not isinstance(item, Failed):
                    out.append(item)
                    continue
                failed.append(item.error)
                if fmt == "json":
                    record = {key: item.line, "line_number": item.number, "error": item.error}
                    out.append(strictjson.dumps(dict(record, checkpoint=model_path), ensure_ascii=False))
                elif many:
                    write_lines(out)  # the answers before it come first, so stdout and stderr read in order
                    out = []
                    click.echo(f"rnn: error: {item.error}", err=True)
        write_lines(out)
    _stream_verdict(failed, seen, many, done_word, fmt)


def _stream_verdict(failed: list[str], total: int, many: bool, done_word: str, fmt: str) -> None:
    """The exit status of a stream of lines: 0 when every line was answered; 2 when some could not
    be (each was named on stderr, or by an `error` record with --format json)."""
    if not failed:
        return
    from ..errors import DataError

    if not many:
        raise DataError(failed[0])
    named = "their records have an error key" if fmt == "json" else "named above"
    others = "; the others were" if len(failed) < total else ""
    raise DataError(f"{len(failed):,} of {plural(total, 'line')} could not be {done_word} ({named}){others}")
