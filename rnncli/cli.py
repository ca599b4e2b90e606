"""The `rnn` command: a thin Click adapter over the library.

Parses options, calls train/infer, writes results to stdout (data) and
progress, warnings and errors to stderr (talk), and turns every ``RnnError``
into one line on stderr and its exit code:

    0  success
    1  runtime failure (damaged checkpoint, divergence, ...) or a failed gate (--max-ppl)
    2  usage or configuration error (bad option, bad config key, missing file)

Heavy modules are imported inside the commands that need them, so `rnn predict`
never pays for yaml or tqdm.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shlex
import sys
import warnings
from dataclasses import dataclass

import click

from . import __version__, strictjson
from .errors import RnnError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _fail(message: str, code: int) -> None:
    click.echo(f"rnn: error: {message}", err=True)
    sys.exit(code)


def reports_errors(fn):
    """Run a command body, mapping user mistakes to one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if sys.stdout is None:  # started with stdout closed (`>&-`): refuse before doing any work
                from .errors import OutputError

                raise OutputError("stdout is closed; give the command somewhere to write (a file, a pipe, /dev/null)")
            return fn(*args, **kwargs)
        except RnnError as e:
            label = getattr(e, "label", "error")  # "interrupted" for a signal that stopped training
            if not getattr(e, "silent", False):
                click.echo(f"rnn: {label}: {e}", err=True)
            if e.exit_code == EXIT_FAILURE and isinstance(e.__cause__, OSError):
                _silence_stdout()  # the output failed: the interpreter's final flush must not fail again
            sys.exit(e.exit_code)
        except BrokenPipeError:
            # the reader went away (`rnn predict - | head -1`): stop quietly
            _silence_stdout()
            sys.exit(EXIT_OK)
        except MemoryError:
            ctx = click.get_current_context(silent=True)
            smaller = {"eval": "--batch-size, ", "predict": "--beam, ", "fill": "--shortlist, "}.get(
                getattr(ctx, "info_name", ""), ""
            )
            click.echo(f"rnn: error: out of memory; use a smaller model, {smaller}input, or a larger machine", err=True)
            sys.exit(EXIT_FAILURE)
        except OSError as e:  # the safety net: a file or device failed under us (full disk, I/O error)
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"rnn: error: {where}{e.strerror or e}; nothing was written past that point", err=True)
            _silence_stdout()
            sys.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo("rnn: interrupted", err=True)
            sys.exit(130)

    return wrapper


# the model every reading command uses; how the default is found is in checkpoint.locate_checkpoint
checkpoint_option = click.option(
    "--checkpoint",
    "-c",
    "checkpoint",
    metavar="DIR",
    help="Run folder or checkpoint folder [default: $RNN_CHECKPOINT, else the last `rnn train` here].",
)


def format_option(help: str, tsv: bool = False):
    """The --format option of every command: text for people, json (and tsv) for programs."""
    choices = ["text", "json", "tsv"] if tsv else ["text", "json"]
    return click.option("--format", "fmt", type=click.Choice(choices), default="text", show_default=True, help=help)


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses NaN and the infinities (which pass any range check)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a failed stdout stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


def write_lines(lines: list[str]) -> None:
    """Lines of data on stdout in one write, flushed so that pipeline consumers see them at once.

    A full disk or a failing device is an OutputError (one line, exit 1); a reader that went
    away is a BrokenPipeError, which ends the command quietly.
    """
    if not lines:
        return
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        from .errors import OutputError

        raise OutputError(f"cannot write the results to stdout: {e.strerror or e}") from e


def emit(line: str) -> None:
    """One line of data on stdout, flushed so that pipeline consumers see it at once."""
    write_lines([line])


class _Rnn(click.Group):
    """The `rnn` group, with click's own usage errors in the house style: one line, `rnn: error: ...`.

    Click prints a usage block and "Error: ..." on several lines; scripts that read stderr (and the
    README's promise) want one line, with the exit code click chose (2 for usage errors).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # NumPy's floating-point warnings are never shown: a non-finite result is caught where it
        # matters (a diverged step or validation, a model whose output is NaN) and named in one line
        warnings.simplefilter("ignore", RuntimeWarning)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        if sys.stdin is None:  # started with stdin closed (`<&-`): an error only if stdin is read
            sys.stdin = _ClosedStdin()
        if sys.stdout is None:  # `>&-`: say so, for --help and --version too
            _fail("stdout is closed; give the command somewhere to write (a file, a pipe, /dev/null)", EXIT_FAILURE)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError:
            _fail(f"no command given: one of {', '.join(sorted(self.commands))}; see 'rnn --help'", EXIT_USAGE)
        except click.ClickException as e:
            message = " ".join(e.format_message().split())
            where = getattr(getattr(e, "ctx", None), "command_path", None)
            if where is None:  # errors of the option parser carry no context: name the command given
                command = next((a for a in argv if not a.startswith("-")), None)
                where = f"rnn {command}" if command in self.commands else "rnn"
            hint = f"; see '{where} --help'"
            click.echo(f"rnn: error: {message.rstrip('.')}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("rnn: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # --help into `| head -1`
            _silence_stdout()
            sys.exit(EXIT_OK)
        except OSError as e:  # --help or --version into a full disk or a failing device
            _silence_stdout()
            _fail(f"cannot write to stdout: {e.strerror or e}", EXIT_FAILURE)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


class _ClosedStdin:
    """What sys.stdin is when `rnn` was started with stdin closed: reading it is a usage error."""

    def isatty(self) -> bool:
        return False

    def _closed(self, *args, **kwargs):
        from .errors import UsageError

        raise UsageError("stdin is closed: give the input as arguments or files, or through a pipe")

    read = readline = __iter__ = _closed

    @property
    def buffer(self):
        self._closed()


@click.group(cls=_Rnn, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnn")
def main() -> None:
    """Train a recurrent next-word predictor on your text, and use it.

    \b
    rnn train configs/default.yaml       train (checkpoints in checkpoint.dir)
    rnn predict "sentindo-se"            top next words of a prompt
    rnn eval data/test.txt --max-ppl 150 perplexity, with a CI gate

    Exit codes: 0 ok, 1 runtime failure or failed gate, 2 usage or config error.
    """


# ---------------------------------------------------------------------- train
class _BarReporter:
    """Progress bar (stderr, terminals only) and one line per epoch (stderr, unless --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.show_bar = not quiet and sys.stderr.isatty()
        self.bar = None
        self.loss = None

    def reading(self, done: int, total: int) -> None:
        """A bar while the corpus is read and tokenized (shown only if that takes over a second)."""
        if not self.show_bar:
            return
        if self.bar is None and done < total:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc="reading the corpus",
                unit="B",
                unit_scale=True,
                leave=False,
                delay=1.0,
                file=sys.stderr,
            )
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
                self.bar = None

    def corpus(self, info: dict) -> None:
        if not self.quiet:
            split = " (split off the end of train)" if info["valid_split_from_train"] else ""
            click.echo(
                f"corpus: {info['train_tokens']:,} training tokens, {info['valid_tokens']:,} validation "
                f"tokens{split}, vocabulary {info['vocab_size']:,}",
                err=True,
            )

    def epoch_start(self, epoch: int, total: int, done: int) -> None:
        if self.show_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch}", unit="win", leave=False, file=sys.stderr)

    def window(self, tokens: int, loss: float, tokens_per_sec: float) -> None:
        if self.bar is not None:
            import math

            self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
            self.bar.set_postfix(
                loss=f"{self.loss:.3f}",
                ppl=f"{math.exp(min(self.loss, 50)):.1f}",
                tok_s=f"{tokens_per_sec:,.0f}",
                refresh=False,
            )
            self.bar.update(1)

    def epoch_end(self, r: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            valid = f"valid ppl {r['valid_ppl']:.2f}" if r["valid_ppl"] is not None else "no validation text"
            part = "" if r["complete"] else " (stopped at train.max_tokens)"
            click.echo(
                f"epoch {r['epoch']}{part}: train ppl {r['train_ppl']:.2f}, {valid}, lr {r['lr']:g}, "
                f"{r['tokens_per_sec']:,.0f} tokens/s, {r['seconds']:.1f} s{' *best*' if r['best'] else ''}",
                err=True,
            )

    def message(self, text: str) -> None:
        click.echo(f"rnn: {text}", err=True)


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. --set train.epochs=3 (repeatable; value read as YAML).",
)
@click.option("--resume", is_flag=True, help="Continue the run in checkpoint.dir from its last checkpoint.")
@click.option(
    "--from",
    "resume_from",
    metavar="NAME",
    default=None,
    help="With --resume: the checkpoint to continue from: last, best, or a ckpt-* folder of the run  [default: last]",
)
@click.option("--overwrite", is_flag=True, help="Start a new run even if checkpoint.dir holds one.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-epoch lines on stderr.")
@format_option("json: print one JSON object with the run's summary on stdout.")
@reports_errors
def train(config, overrides, resume, resume_from, overwrite, quiet, fmt):
    """Train a model as CONFIG says (a YAML file; see configs/reference.yaml)."""
    if resume and overwrite:
        raise _usage("--resume and --overwrite exclude each other")
    if resume_from is not None and not resume:
        raise _usage("--from NAME chooses the checkpoint that --resume continues from; add --resume")
    from .comm import communicator
    from .config import load_config
    from .signals import StopRequest, handle_signals
    from .train import TrainingInterrupted, run_training

    comm = communicator()  # MPI when started by mpirun/mpiexec, else one process (mpi4py not imported)
    resume_line = _resume_command(config, overrides, comm.size)
    try:
        cfg = load_config(config, overrides)
        with handle_signals(StopRequest(_stop_notice(resume_line, comm.size) if comm.is_root else None)) as stop:
            summary = run_training(
                cfg,
                resume=resume,
                overwrite=overwrite,
                reporter=_BarReporter(quiet),
                stop=stop,
                comm=comm,
                resume_from=resume_from or "last",
            )
    except TrainingInterrupted as e:
        if e.checkpoint is not None:
            e.args = (f"{e}; continue with: {resume_line}",)
        raise _quiet_unless_root(e, comm) from None
    except RnnError as e:
        raise _quiet_unless_root(e, comm) from None
    if not comm.is_root:
        return  # rank 0 prints the summary
    if fmt == "json":
        emit(strictjson.dumps(summary))
    else:
        valid = f"{summary['valid_ppl']:.2f}" if summary["valid_ppl"] is not None else "n/a"
        best = f"{summary['best_valid_ppl']:.2f}" if summary["best_valid_ppl"] is not None else "n/a"
        speed = f"{summary['tokens_per_sec']:,.0f}" if summary["tokens_per_sec"] is not None else "n/a"
        emit(
            f"trained {_epochs_trained(summary)}, {summary['tokens']:,} tokens in {summary['train_seconds']:.1f} s "
            f"({speed} tokens/s; this session {summary['session_tokens']:,} tokens, {summary['session_seconds']:.1f} s)"
        )
        emit(f"valid perplexity {valid} (best {best})")
        emit(f"checkpoint {summary['checkpoint']}")


def _resume_command(config: str, overrides: tuple[str, ...], workers: int) -> str:
    """The command line that continues an interrupted run (any worker count resumes it exactly)."""
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    launch = f"mpirun -n {workers} " if workers > 1 else ""
    return f"{launch}rnn train {shlex.quote(config)}{sets} --resume"


def _stop_notice(resume_line: str, workers: int):
    """What rank 0 says the moment a signal asks training to save and stop.

    Under mpirun the launcher stops passing on the workers' output as soon as it is interrupted
    (Open MPI drops it while the workers are still saving), so there the notice, with the way
    back, goes straight to the terminal when there is one; one process says it on stderr.
    """
    import signal

    def notice(signum: int) -> None:
        name = signal.Signals(signum).name
        text = f"rnn: {name} received: saving a checkpoint, then stopping"
        text += " (a second signal stops at once, without saving)"
        if workers > 1:
            text += f"; continue with: {resume_line}"
            if not sys.stderr.isatty():
                try:
                    with open("/dev/tty", "w", encoding="utf-8") as tty:
                        tty.write(text + "\n")
                    return
                except OSError:  # no controlling terminal (a batch job): stderr it is
                    pass
        click.echo(text, err=True)

    return notice


def _plural(count: int, word: str) -> str:
    """'1 epoch', '2 epochs', '1,000 words'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _epochs_trained(summary: dict) -> str:
    """'3 epochs'; '2 epochs and 45% of the third' or '3% of an epoch' when train.max_tokens
    stopped the run inside an epoch."""
    whole, part = summary.get("epochs_completed", summary["epochs"]), summary.get("partial_epoch", 0.0)
    if not part:
        return _plural(whole, "epoch")
    share = f"{part:.0%}" if part >= 0.01 else "under 1%"
    if whole == 0:
        return f"{share} of an epoch (stopped at train.max_tokens)"
    return f"{_plural(whole, 'epoch')} and {share} of epoch {whole + 1} (stopped at train.max_tokens)"


def _quiet_unless_root(e: RnnError, comm) -> RnnError:
    """Under MPI every worker raises the same error (decisions are agreed); only rank 0 prints it."""
    if not comm.is_root:
        e.silent = True
    return e


def _usage(message: str):
    from .errors import UsageError

    return UsageError(message)


# -------------------------------------------------------------------- predict
PROMPT_BATCH = 2048  # prompts per network batch when reading a stream


def _prompt_batches(
    prompts: tuple[str, ...], input_file: str | None, reading: dict | None = None, bad_lines: str = "mark"
):
    """Batches of prompts: the arguments, `--input FILE`, or stdin (no prompt, '-', or `--input -`).

    Files and stdin go through `data.line_batches`, the reader `train`/`eval` share in spirit: gzip
    (files), the checkpoint's ``data.encoding``, and a bad line named by its number (``reading``
    holds ``encoding``, ``errors`` and ``warn``; strict UTF-8 when not given).  A line that is not
    valid text is a ``data.BadLine`` in its place (``bad_lines="mark"``: the command names it and
    answers the others) or stops the reading (``"raise"``: a text read as a whole).
    """
    from .data import file_line_batches, line_batches

    reading = dict(reading or {}, bad_lines=bad_lines)
    if input_file is not None and prompts:
        raise _usage("give prompts as arguments or with --input FILE, not both")
    if prompts and prompts != ("-",):
        if "-" in prompts:
            raise _usage("give prompts as arguments or '-' for stdin, not both")
        prompts = tuple(_argument_text(p, i, reading) for i, p in enumerate(prompts, start=1))
        for lo in range(0, len(prompts), PROMPT_BATCH):
            yield list(prompts[lo : lo + PROMPT_BATCH])
        return
    if input_file is not None and input_file != "-":
        yield from file_line_batches(input_file, f"--input {input_file}", PROMPT_BATCH, **reading)
        return
    yield from line_batches(getattr(sys.stdin, "buffer", sys.stdin), "stdin", PROMPT_BATCH, **reading)


def _locate(checkpoint: str | None):
    """The model folder a reading command uses (--checkpoint, $RNN_CHECKPOINT, the last run here)
    and how it was found (None when named with --checkpoint)."""
    from .checkpoint import locate_checkpoint

    return locate_checkpoint(checkpoint)


def _announce(ckpt, found_by: str | None) -> str:
    """Say which model answers when the user did not name it (one stderr line, on a terminal), so a
    model left behind by another run cannot answer unnoticed; returns the checkpoint folder as the
    `checkpoint` field of JSON records."""
    from pathlib import Path

    where = str(Path(ckpt.path).resolve())
    if found_by is not None and sys.stderr.isatty():
        click.echo(f"rnn: model {where} (found through {found_by})", err=True)
    return where


def _decode_hint(encoding: str) -> str:
    """What to do about a file that is not valid text, for a command that reads with a checkpoint."""
    return f"the checkpoint reads {encoding}: convert the file, or pass --errors replace to go on with U+FFFD"


def _stdin_lines(reading: dict):
    """stdin's lines, read as prompt files are (``_reading``: data.encoding, --errors, a bad line named),
    each with its line break (the tokenizer joins pieces that have none)."""
    yield from (line + "\n" for batch in _prompt_batches((), None, reading, "raise") for line in batch)


def _text_files(files: tuple[str, ...], command: str) -> tuple[str, ...]:
    """The files a command reads its text from, '-' (stdin) among them at most once; none is stdin.
    A name that is no file is refused before anything is read, with the hint that text comes
    from files or stdin (`rnn score "some words"` reads no words)."""
    from .data import _GLOB_CHARS
    from .errors import DataError

    files = files or ("-",)
    if files.count("-") > 1:
        raise _usage("stdin can be read once: give '-' once")
    for name in files:
        if name != "-" and not _GLOB_CHARS & set(name) and not os.path.exists(name):
            raise DataError(
                f"{name}: no such file; rnn {command} reads its text from files or stdin, "
                f"e.g. echo {shlex.quote(name)} | rnn {command}"
            )
    return files


def _text_tokens(files: tuple[str, ...], command: str, tokenizer, reading: dict):
    """The tokens of the text a command reads: FILES, each tokenized on its own as train reads them
    (gzip, the checkpoint's data.encoding), with '-' (or no file) for stdin through the same reader.
    Returns (tokens, source)."""
    from .data import iter_file_tokens, resolve_files

    files = _text_files(files, command)
    encoding = reading["encoding"]
    paths = {name: resolve_files([name], command) for name in files if name != "-"}  # every name checked first

    def tokens():
        for name in files:
            if name == "-":
                yield from tokenizer.iter_tokens(_stdin_lines(reading))
            else:
                yield from iter_file_tokens(paths[name], tokenizer, encoding, reading["errors"], _decode_hint(encoding))

    return tokens(), ("stdin" if files == ("-",) else ", ".join(files))


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
            from .data import BadLine

            error = (
                f"argument {number} is not valid {encoding} (byte {e.start + 1}); fix it, or pass --errors replace "
                "to replace the bad bytes"
            )
            return BadLine(raw.decode(encoding, "replace"), error, number)
        if reading.get("warn"):
            reading["warn"](f"argument {number} is not valid {encoding}; its bad bytes were replaced (U+FFFD)")
        return raw.decode(encoding, "replace")


def _reading(ckpt, errors: str | None) -> dict:
    """How prompt files are decoded: the checkpoint's data.encoding, and --errors (or data.errors)."""
    data_cfg = ckpt.meta.get("config", {}).get("data", {})
    return {
        "encoding": data_cfg.get("encoding", "utf-8"),
        "errors": errors or data_cfg.get("errors", "strict"),
        "warn": lambda text: click.echo(f"rnn: warning: {text}", err=True),
    }


errors_option = click.option(
    "--errors",
    "errors",
    type=click.Choice(["strict", "replace"]),
    default=None,
    help="A line that is not valid text in the checkpoint's data.encoding: strict names it by its number and "
    "leaves it unanswered (predict, score and fill answer the other lines, then exit 2; eval and tokenize, "
    "which read a text as a whole, stop); replace swaps the bad bytes for U+FFFD, warns with the line number "
    "and goes on  [default: the checkpoint's data.errors, normally strict]",
)


def _prob(p: float) -> str:
    """A probability as text shows it: three decimals, or two significant digits below 0.0005, which
    three decimals would show as a misleading 0.000 (0.00012, 3.1e-07; 0 only for zero)."""
    shown = f"{p:.3f}"
    if shown != "0.000" or p == 0:
        return shown
    return f"{p:.2g}"


def _one_line(text: str) -> str:
    """A prompt as a field of a text or TSV row: no tabs or line breaks inside."""
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


class _Predictor:
    """One loaded model and the options of a `rnn predict` run: turns a batch of prompts into output lines."""

    def __init__(self, model, tokenizer, vocab, opts: dict):
        self.model, self.tokenizer, self.vocab, self.o = model, tokenizer, vocab, opts
        self.words_json: dict[int, str] = {}  # id -> the word as a JSON string, built as needed
        self.done = 0  # prompts answered so far: a prompt's index seeds its own generator
        self.index = None  # --complete's prefix index, built on first use

    def context(self, tokens: list[str]):
        import numpy as np

        # a prompt starts a sentence: the model sees it after an <eos>
        ids = np.empty(len(tokens) + 1, dtype=np.int32)  # (T,)
        ids[0] = self.vocab.eos_id
        ids[1:] = self.vocab.encode(tokens)
        return ids

    def lines(self, prompts: list[str], many: bool) -> list[str]:
        if self.o["complete"]:
            return self._completions(prompts, many)
        tokens = [self.tokenizer.tokenize_prompt(p) for p in prompts]
        contexts = [self.context(t) for t in tokens]
        first = self.done
        self.done += len(prompts)
        if self.o["beam"]:
            return self._beams(prompts, tokens, contexts, many)
        if self.o["generate"]:
            return self._samples(prompts, tokens, contexts, first)
        return self._top(prompts, contexts, many)

    def _top(self, prompts, contexts, many) -> list[str]:
        import numpy as np

        from .generate import next_log_probs, top_k_rows

        vocab, fmt = self.vocab, self.o["fmt"]
        where = json.dumps(self.o["checkpoint"], ensure_ascii=False)
        logp = next_log_probs(self.model, contexts, dtype=np.float32)  # (n, V)
        rows = top_k_rows(logp, self.o["k"], self.o["exclude"], self.o["min_prob"])
        out = []
        if fmt == "json":
            wj = self.words_json
            for prompt, row in zip(prompts, rows):
                preds = []
                for i, p in row:
                    w = wj.get(i)
                    if w is None:
                        w = wj[i] = json.dumps(vocab.itos[i], ensure_ascii=False)
                    prob = repr(p) if math.isfinite(p) else "null"  # strict JSON, as strictjson writes it
                    preds.append(f'{{"word": {w}, "prob": {prob}}}')
                head = json.dumps(prompt, ensure_ascii=False)
                out.append(f'{{"prompt": {head}, "predictions": [{", ".join(preds)}], "checkpoint": {where}}}')
        elif fmt == "tsv":
            for prompt, row in zip(prompts, rows):
                field = _one_line(prompt)
                out.extend(f"{field}\t{vocab.itos[i]}\t{p:.6g}" for i, p in row)
        else:
            for prompt, row in zip(prompts, rows):
                shown = ", ".join(f"{vocab.itos[i]} {_prob(p)}" for i, p in row)
                out.append(f"{_one_line(prompt)}\t{shown}" if many else shown)
        return out

    def _completions(self, prompts, many) -> list[str]:
        import numpy as np

        from .complete import PrefixIndex, complete_rows, split_prompt
        from .generate import next_log_probs

        vocab, fmt = self.vocab, self.o["fmt"]
        if self.index is None:  # built once, on the first prompt: each lookup is then two binary searches
            self.index = PrefixIndex(vocab.itos, (vocab.unk_id, vocab.eos_id), accents=self.o["match_accents"])
        first = self.done
        self.done += len(prompts)
        split = [split_prompt(p) for p in prompts]
        contexts = [self.context(self.tokenizer.tokenize_prompt(context)) for context, _ in split]
        logp = next_log_probs(self.model, contexts, dtype=np.float32)  # (n, V)
        rows = complete_rows(logp, self.index, [prefix for _, prefix in split], self.o["k"], self.o["min_prob"])
        out = []
        for number, (prompt, (_, prefix), row) in enumerate(zip(prompts, split, rows), start=first + 1):
            if not row.matches:
                where = f" (prompt {number})" if many else ""
                click.echo(f"rnn: no word of the vocabulary starts with {prefix!r}{where}", err=True)
            if fmt == "json":
                preds = [{"word": vocab.itos[i], "prob": p, "match_prob": q} for i, p, q in row.words]
                obj = {"prompt": prompt, "prefix": prefix, "matches": row.matches, "match_mass": row.mass}
                obj["predictions"] = preds
                obj["checkpoint"] = self.o["checkpoint"]
                out.append(strictjson.dumps(obj, ensure_ascii=False))
            elif fmt == "tsv":
                out.extend(f"{_one_line(prompt)}\t{vocab.itos[i]}\t{q:.6g}\t{p:.6g}" for i, p, q in row.words)
            else:
                shown = ", ".join(f"{vocab.itos[i]} {_prob(q)} ({_prob(p)})" for i, p, q in row.words)
                out.append(f"{_one_line(prompt)}\t{shown}" if many else shown)  # empty when none is left
        return out

    def _samples(self, prompts, tokens, contexts, first) -> list[str]:
        from .generate import generate, prompt_rngs
        from .tokenizer import detokenize

        o = self.o
        rngs = prompt_rngs(o["seed"], first, len(prompts))
        results = generate(
            self.model,
            contexts,
            o["generate"],
            rngs,
            temperature=o["temperature"],
            top_k=o["top_k_sampling"],
            top_p=o["top_p"],
            exclude=o["gen_exclude"],
            stop_id=self.vocab.eos_id if o["stop_at_eos"] else None,
        )
        out = []
        for prompt, toks, (ids, logprob) in zip(prompts, tokens, results):
            words = self.vocab.decode(ids)
            text = detokenize(toks + words)
            if o["fmt"] == "json":
                obj = {"prompt": prompt, "text": text, "continuation": words, "logprob": logprob}
                obj["checkpoint"] = o["checkpoint"]
                out.append(strictjson.dumps(obj, ensure_ascii=False))
            elif o["fmt"] == "tsv":
                out.append(f"{_one_line(prompt)}\t{_one_line(text)}")
            else:
                out.append(text)
        return out

    def _beams(self, prompts, tokens, contexts, many) -> list[str]:
        from .generate import beam_search
        from .tokenizer import detokenize

        o = self.o
        stop = self.vocab.eos_id if o["stop_at_eos"] else None
        out = []
        for prompt, toks, ctx in zip(prompts, tokens, contexts):
            beams = beam_search(self.model, ctx, o["generate"], o["beam"], exclude=o["gen_exclude"], stop_id=stop)
            shown = [(self.vocab.decode(ids), lp) for ids, lp in beams]
            if o["fmt"] == "json":
                obj = {
                    "prompt": prompt,
                    "beams": [{"text": detokenize(toks + w), "continuation": w, "logprob": lp} for w, lp in shown],
                    "checkpoint": o["checkpoint"],
                }
                out.append(strictjson.dumps(obj, ensure_ascii=False))
            else:
                for w, lp in shown:
                    row = f"{_one_line(detokenize(toks + w))}\t{lp:.4f}"
                    out.append(f"{_one_line(prompt)}\t{row}" if many or o["fmt"] == "tsv" else row)
        return out


def _beam_that_fits(width: int, steps: int, vocab_size: int) -> int:
    """--beam W, capped at the number of continuations there are (V^steps), and refused (exit 1)
    when its (W, V) score arrays would not fit in memory."""
    asked, width = width, min(width, vocab_size**steps)
    live = min(width, vocab_size ** (steps - 1))  # hypotheses extended at the widest step
    need = 24 * live * vocab_size  # float64 scores, their candidates and the partition's indices
    _refuse_unless_it_fits(need, f"--beam {asked:,} needs", f"for a vocabulary of {vocab_size:,} words", "--beam")
    return width


def _refuse_unless_it_fits(need: int, what: str, context: str, smaller: str) -> None:
    """A ResourceError (exit 1, before any work) when ``need`` bytes exceed the memory available."""
    from .errors import ResourceError
    from .train import available_memory

    free = available_memory()
    if free is not None and need > free:
        raise ResourceError(
            f"{what} about {need / 2**30:,.1f} GiB {context}, and {free / 2**30:.1f} GiB is available; "
            f"use a smaller {smaller}"
        )


def _fill_beam_that_fits(width: int, shortlist: int) -> int:
    """fill --beam W: each blank after the first extends W partial fills by S candidates, W x S rows
    of Python tuples and scores (about 200 bytes each); refused (exit 1) when they cannot fit in memory."""
    what = f"--beam {width:,} keeps up to {width * shortlist:,} partial fills with --shortlist {shortlist:,}:"
    _refuse_unless_it_fits(200 * width * shortlist, what, "for them", "--beam or --shortlist")
    return width


def _interactive(predictor: _Predictor) -> None:
    """Read a line at a time from the terminal (readline editing and history) and answer it."""
    try:
        import readline  # noqa: F401 (imported for its side effect: line editing and history in input())
    except ImportError:  # pragma: no cover (Windows without pyreadline)
        pass
    click.echo("type a prompt and Enter; Ctrl-D to quit", err=True)
    # the "> " prompt is talk: on a terminal input() shows it (readline redraws it); when stdout is
    # redirected it goes to stderr, so that stdout holds only the answers
    on_terminal = sys.stdout.isatty()
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
        for line in predictor.lines([prompt], many=False):
            emit(line)


@main.command()
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
            raise _usage(f"{given[0]} only applies with --generate N")
    elif beam:
        given = [name for name, on in sampling.items() if on]
        if given:
            raise _usage(f"--beam searches for the most probable continuations; it does not sample: drop {given[0]}")
        if min_prob > 0:
            raise _usage("--min-prob applies to the top words, not to --generate")
    elif min_prob > 0:
        raise _usage("--min-prob applies to the top words, not to --generate")
    if generate and click.get_current_context().get_parameter_source("k") != click.core.ParameterSource.DEFAULT:
        raise _usage(
            "--top-k lists the next words; with --generate it does nothing: use --top-k-sampling K to sample "
            "among the K most probable words, or --beam W for W continuations"
        )
    if match_accents and not complete:
        raise _usage("--match-accents only applies with --complete")
    if complete and generate:
        raise _usage("--complete finishes the prompt's last word; it does not go with --generate")
    if complete and show_unk:
        raise _usage("--complete offers vocabulary words only: <unk> and <eos> never match; drop --show-unk")
    if interactive and (prompts or input_file is not None):
        raise _usage("--interactive reads prompts from the terminal: give no prompt and no --input")
    if not interactive and not prompts and input_file is None and sys.stdin.isatty():
        interactive = True

    from .infer import load_model

    path, found_by = _locate(checkpoint)
    model, tokenizer, vocab, ckpt = load_model(path)
    model_path = _announce(ckpt, found_by)
    if beam:
        beam = _beam_that_fits(beam, generate, len(vocab))
    opts = {
        "fmt": fmt,
        "k": k,
        "min_prob": min_prob,
        "exclude": () if show_unk else (vocab.unk_id, vocab.eos_id),
        "gen_exclude": () if show_unk else (vocab.unk_id,),
        "generate": generate,
        "temperature": 1.0 if temperature is None else temperature,
        "top_k_sampling": top_k_sampling,
        "top_p": top_p,
        "seed": seed,
        "stop_at_eos": stop_at_eos,
        "beam": beam,
        "complete": complete,
        "match_accents": match_accents,
        "checkpoint": model_path,
    }
    predictor = _Predictor(model, tokenizer, vocab, opts)
    if interactive:
        _interactive(predictor)
        return
    many = len(prompts) != 1 or prompts == ("-",)

    def answer(run: list[str], first: int) -> list[str]:
        predictor.done = first - 1  # a prompt's line number seeds its generator, bad lines counted
        return predictor.lines(run, many)

    batches = _prompt_batches(prompts, input_file, _reading(ckpt, errors))
    _answer_lines(batches, answer, fmt=fmt, many=many, key="prompt", model_path=model_path, done_word="answered")


# ---------------------------------------------------------------------- score
@main.command()
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
    from .generate import score_sequences
    from .infer import load_model

    files = _text_files(files, "score")
    path, found_by = _locate(checkpoint)
    model, tokenizer, vocab, ckpt = load_model(path)
    model_path = _announce(ckpt, found_by)
    reading = _reading(ckpt, errors)

    def batches():
        from .data import file_line_batches, line_batches

        marked = dict(reading, bad_lines="mark")
        for name in files:
            if name == "-":
                yield from line_batches(getattr(sys.stdin, "buffer", sys.stdin), "stdin", PROMPT_BATCH, **marked)
            else:
                yield from file_line_batches(name, name, PROMPT_BATCH, **marked)

    def answer(lines: list[str], first: int) -> list[str]:
        tokens = [tokenizer.tokenize(line) for line in lines]
        ids = [vocab.encode(t) for t in tokens]
        logps = score_sequences(model, ids, vocab.eos_id)
        out = []
        for line, toks, tid, lp in zip(lines, tokens, ids, logps):
            total = float(lp.sum())
            n = len(toks)
            ppl = math.exp(-total / n) if n and -total / n < 700 else (None if not n else float("inf"))
            probs = [math.exp(x) for x in lp.tolist()]
            if fmt == "json":
                words = [
                    {"word": w, "prob": p, "unk": True} if i == vocab.unk_id else {"word": w, "prob": p}
                    for w, i, p in zip(toks, tid.tolist(), probs)
                ]
                obj = {"line": line, "tokens": n, "logprob": total, "perplexity": ppl, "words": words}
                obj["checkpoint"] = model_path
                out.append(strictjson.dumps(obj, ensure_ascii=False))
            elif fmt == "tsv":
                out.extend(f"{_one_line(line)}\t{w}\t{p:.6g}" for w, p in zip(toks, probs))
            else:
                shown = ", ".join(f"{w} {_prob(p)}" for w, p in zip(toks, probs))
                ppl_s = "n/a" if ppl is None else f"{ppl:.2f}"
                out.append(f"{total:.3f}\t{ppl_s}\t{_one_line(line)}\t{shown}")
        return out

    many = True  # lines of files: always a stream
    _answer_lines(batches(), answer, fmt=fmt, many=many, key="line", model_path=model_path, done_word="scored")


# ----------------------------------------------------------------------- fill
def _fill_rows(blanked, ranked, vocab, k: int, fmt: str, many: bool, model_path: str) -> list[str]:
    """Output lines for one filled line: text, one JSON object, or TSV rows."""
    fills = [([vocab.itos[i] for i in ids], p) for ids, p in ranked.top(k)]
    line = blanked.line
    if fmt == "json":
        shown = [{"words": words, "text": blanked.text(words), "prob": p} for words, p in fills]
        obj = {"line": line, "blanks": blanked.blanks, "fills": shown, "checkpoint": model_path}
        return [strictjson.dumps(obj, ensure_ascii=False)]
    if fmt == "tsv":
        return [f"{_one_line(line)}\t{' '.join(words)}\t{p:.6g}" for words, p in fills]
    shown = ", ".join(f"{' | '.join(words)} {_prob(p)}" for words, p in fills)
    return [f"{_one_line(line)}\t{shown}" if many else shown]


@main.command()
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
    from .fill import DEFAULT_BEAM, LineError, blank_regex, default_shortlist, fill_lines, split_line
    from .infer import load_models

    if marker is not None and not marker.strip():
        raise _usage("--blank needs a marker that is not empty or blank")
    path, found_by = _locate(checkpoint)
    models = load_models(path)
    model_path = _announce(models.ckpt, found_by)
    tokenizer, vocab = models.tokenizer, models.vocab
    pattern = blank_regex(marker)
    size = shortlist or default_shortlist(models.forward, models.backward)
    opts = {
        "shortlist": size,
        "beam": _fill_beam_that_fits(beam or DEFAULT_BEAM, size),
        "exclude": () if show_unk else (vocab.unk_id, vocab.eos_id),
    }
    from_args = bool(lines) and lines != ("-",)
    source = "argument" if from_args else ("stdin line" if input_file in (None, "-") else f"--input {input_file} line")
    many = len(lines) != 1 or lines == ("-",)

    def answer(run: list[str], first: int) -> list:
        blanked, out = {}, []  # position in the run -> the line split at its blanks
        for i, line in enumerate(run):
            try:
                blanked[i] = split_line(line, tokenizer, vocab, pattern)
            except LineError as e:
                where = f"{source} {first + i} " if many else ""
                blanked[i] = _Failed(line, first + i, f"{where}{_one_line(line)[:60]!r}: {e}")
        good = {i: b for i, b in blanked.items() if not isinstance(b, _Failed)}
        filled = fill_lines(models.forward, models.backward, list(good.values()), vocab.eos_id, **opts) if good else []
        ranked = dict(zip(good, filled))
        for i in range(len(run)):
            if i in ranked:
                out.extend(_fill_rows(blanked[i], ranked[i], vocab, k, fmt, many, model_path))
            else:
                out.append(blanked[i])  # named in its place; the lines after it are filled too
        return out

    batches = _prompt_batches(lines, input_file, _reading(models.ckpt, errors))
    _answer_lines(batches, answer, fmt=fmt, many=many, key="line", model_path=model_path, done_word="filled")


@dataclass
class _Failed:
    """A line of a stream that could not be answered: named in its place, and the stream goes on."""

    line: str
    number: int
    error: str


def _answer_lines(batches, answer, *, fmt: str, many: bool, key: str, model_path: str, done_word: str) -> None:
    """Answer a stream of lines batch by batch, each batch's output written at once, in input order.

    ``answer(lines, first_number)`` returns the output lines of a run of readable lines, with a
    ``_Failed`` in place of a line it could not answer; a line that could not be read as text
    (``data.BadLine``) is never given to it.  A failed line is named as it comes (stderr, after the
    output before it; with --format json a record with ``error`` and ``line_number`` in its place),
    and the exit status at the end says that some failed (2).
    """
    from itertools import groupby

    from .data import BadLine

    failed, seen = [], 0
    for batch in batches:
        out = []
        for bad, run in groupby(batch, key=lambda line: isinstance(line, BadLine)):
            run = list(run)
            items = [_Failed(str(line), line.number, line.error) for line in run] if bad else answer(run, seen + 1)
            seen += len(run)
            for item in items:
                if not isinstance(item, _Failed):
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
    from .errors import DataError

    if not many:
        raise DataError(failed[0])
    named = "their records have an error key" if fmt == "json" else "named above"
    others = "; the others were" if len(failed) < total else ""
    raise DataError(f"{len(failed):,} of {_plural(total, 'line')} could not be {done_word} ({named}){others}")


# ----------------------------------------------------------------------- eval
class _progress_bar:
    """A progress callback ``(done, total)`` for long library work: a tqdm bar on stderr when it is a
    terminal (shown once the work has taken a second), nothing otherwise; the bar is gone at the end."""

    def __init__(self, desc: str, unit: str):
        self.desc, self.unit, self.bar = desc, unit, None

    def __enter__(self):
        return self.update if sys.stderr.isatty() else None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, leave=False, delay=1.0, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _share(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


@main.command("eval")
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
    import numpy as np

    from .errors import CheckpointError, DataError
    from .infer import evaluate, load_models
    from .twoway import reverse_stream

    path, found_by = _locate(checkpoint)
    models = load_models(path)
    model_path = _announce(models.ckpt, found_by)
    tokenizer, vocab, ckpt = models.tokenizer, models.vocab, models.ckpt
    if fill_sample is not None and not fill_blanks:
        raise _usage("--fill-sample only applies with --fill")
    if suggestions is not None and not keystrokes:
        raise _usage("--suggestions only applies with --keystrokes")
    if keystrokes and models.forward is None:
        raise _usage("--keystrokes completes words from the words before them: it needs a forward model")
    tokens, source = _text_tokens(files, "eval", tokenizer, _reading(ckpt, errors))
    if keystrokes:  # completion is measured on the words as typed, not on their ids
        tokens = list(tokens)
    ids = vocab.encode(tokens)
    if ids.size == 0:
        raise DataError(f"no text to evaluate in {source}")
    ids = ids.astype(np.int32)
    scores = {}  # each direction over the same tokens; a backward model reads them right to left
    for name, net, seq in (("forward", models.forward, ids), ("backward", models.backward, None)):
        if net is not None:
            seq = seq if seq is not None else reverse_stream(ids, vocab.eos_id)
            scores[name] = evaluate(net, seq, streams=batch_size, start_id=vocab.eos_id, unk_id=vocab.unk_id).as_dict()
    for name, figures in scores.items():
        if figures["loss"] is not None and math.isnan(figures["loss"]):  # its accuracies would be meaningless too
            raise CheckpointError(
                f"{ckpt.path}: the {name} model predicts NaN on this text: its weights are too large, as after a "
                "training that diverged; train it again with a lower train.lr"
            )
    out = dict(scores.get("forward") or scores["backward"])  # the gates read the forward figures when there are
    out["direction"] = "forward" if "forward" in scores else "backward"
    if len(scores) == 2:
        out["backward"] = scores["backward"]
    if fill_blanks:
        from .fill import fill_accuracy

        with _progress_bar("filling blanks", "word") as progress:
            out["fill"] = fill_accuracy(
                models.forward, models.backward, ids, vocab.eos_id, sample=fill_sample or 0, progress=progress
            )
    if keystrokes:
        from .complete import PrefixIndex, keystroke_savings

        index = PrefixIndex(vocab.itos, (vocab.unk_id, vocab.eos_id))
        with _progress_bar("typing the text", "token") as progress:
            out["keystrokes"] = keystroke_savings(
                models.forward, tokens, ids, index, vocab.eos_id, vocab.unk_id, suggestions or 3, progress
            )
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
    if fmt == "json":
        # an infinite perplexity (a word the model gives probability 0) is null: JSON has no Infinity
        emit(strictjson.dumps({**out, "checkpoint": model_path}))
    else:
        emit(f"tokens       {out['tokens']}")
        emit(f"loss         {out['loss']:.4f} nats/word ({out['bits_per_word']:.3f} bits/word)")
        emit(f"perplexity   {out['perplexity']:.2f}")
        emit(f"top1         {out['top1']:.4f}")
        emit(f"top5         {out['top5']:.4f}")
        emit(f"oov_rate     {out['oov_rate']:.4f}")
        if out["direction"] == "backward":
            emit("direction    backward (each word predicted from the words after it)")
        if "backward" in out:
            back = out["backward"]
            emit(f"backward     perplexity {back['perplexity']:.2f}, top1 {back['top1']:.4f}, top5 {back['top5']:.4f}")
        if "fill" in out:
            f = out["fill"]
            emit(f"fill         {f['positions']} words blanked, filled from {' and '.join(f['directions'])}")
            emit(f"fill top1    {f['top1']:.4f}  (next word, left only: {_share(f['next_word_top1'])})")
            emit(f"fill top5    {f['top5']:.4f}  (next word, left only: {_share(f['next_word_top5'])})")
        if "keystrokes" in out:
            ks = out["keystrokes"]
            emit(
                f"keystrokes   saving rate {ks['saving_rate']:.4f} with {_plural(ks['suggestions'], 'suggestion')} "
                f"({_plural(ks['keystrokes'], 'keystroke')} for {_plural(ks['letters'], 'letter')} of "
                f"{_plural(ks['words'], 'word')})"
            )
    if failures:
        _fail(f"gate failed: {'; '.join(failures)}", EXIT_FAILURE)


# ------------------------------------------------------------------- tokenize
@main.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@checkpoint_option
@errors_option
@reports_errors
def tokenize(files, checkpoint, errors):
    """Print text (FILES, or stdin) exactly as the model sees it.

    One sentence per line (each <eos> ends a line and is not printed), tokens
    separated by single spaces, <unk> for every word outside the vocabulary, so
    that other tools (an n-gram toolkit, grep, a spreadsheet) count the same tokens.
    """
    from .checkpoint import load_checkpoint
    from .infer import load_text_side
    from .tokenizer import EOS

    path, found_by = _locate(checkpoint)
    ckpt = load_checkpoint(path)
    _announce(ckpt, found_by)
    tokenizer, vocab = load_text_side(ckpt)
    # each file on its own, as eval and train read them: a file's last line never runs into the next
    tokens, _ = _text_tokens(files, "tokenize", tokenizer, _reading(ckpt, errors))
    known = vocab.stoi
    sentence: list[str] = []
    out = []
    for token in tokens:
        if token == EOS:
            out.append(" ".join(sentence))
            sentence = []
            if len(out) >= 1024:
                write_lines(out)
                out = []
        else:
            sentence.append(token if token in known else "<unk>")
    if sentence:
        out.append(" ".join(sentence))
    write_lines(out)


# --------------------------------------------------------------------- report
@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False), required=False)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    metavar="FILE.png",
    help="Also draw the learning curves into this image (needs matplotlib: pip install 'rnncli[plot]').",
)
@format_option("json: the metrics.jsonl records, one object per line.")
@reports_errors
def report(run_dir, plot_path, fmt):
    """Show a training run: one row per epoch (train/valid perplexity, lr, tokens/s, time).

    RUN_DIR is the folder `rnn train` wrote (checkpoint.dir) or one of its checkpoints  [default:
    $RNN_CHECKPOINT, else the last `rnn train` here, as predict finds it].
    """
    from pathlib import Path

    from .report import format_table, plot, read_metrics, require_matplotlib, run_folder

    if run_dir is None:
        found, found_by = _locate(None)
        run_dir = run_folder(found)
        if sys.stderr.isatty():
            click.echo(f"rnn: run {run_dir.resolve()} (found through {found_by})", err=True)
    else:
        run_dir = run_folder(Path(run_dir))
    records = read_metrics(run_dir)
    if plot_path:
        require_matplotlib()  # before the table: a missing library is said first, not after the output
    try:
        if fmt == "json":
            write_lines([strictjson.dumps(r) for r in records])
        else:
            write_lines(format_table(records))
    finally:
        # the image is output the user asked for: drawn even when stdout went away (`| head -1`, `| true`)
        if plot_path:
            plot(records, Path(plot_path), title=str(run_dir))
            click.echo(f"rnn: learning curves written to {plot_path}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
