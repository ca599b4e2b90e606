"""What every command shares: the mapping of errors to one line and an exit code, the common
options, and writing data lines to stdout."""

from __future__ import annotations

import functools
import math
import os
import sys

import click

from ..errors import RnnError

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
                from ..errors import OutputError

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
        from ..errors import OutputError

        raise OutputError(f"cannot write the results to stdout: {e.strerror or e}") from e


def emit(line: str) -> None:
    """One line of data on stdout, flushed so that pipeline consumers see it at once."""
    write_lines([line])


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


def usage(message: str):
    from ..errors import UsageError

    return UsageError(message)


def plural(count: int, word: str) -> str:
    """'1 epoch', '2 epochs', '1,000 words'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def prob(p: float) -> str:
    """A probability as text shows it: three decimals, or two significant digits below 0.0005, which
    three decimals would show as a misleading 0.000 (0.00012, 3.1e-07; 0 only for zero)."""
    shown = f"{p:.3f}"
    if shown != "0.000" or p == 0:
        return shown
    return f"{p:.2g}"


def one_line(text: str) -> str:
    """A prompt as a field of a text or TSV row: no tabs or line breaks inside."""
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


class progress_bar:
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
