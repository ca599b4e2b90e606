"""The `rnn` command: a thin Click shell over the Python API (``rnncli.api``).

Each command parses its options, calls the API and formats the result: data on stdout, talk
(progress, warnings, errors) on stderr, and every ``RnnError`` as one line and its exit code:

    0  success
    1  runtime failure (damaged checkpoint, divergence, ...) or a failed gate (--max-ppl)
    2  usage or configuration error (bad option, bad config key, missing file), or some lines
       of a stream that could not be answered

The commands live in one module per group and are imported only when called, so that
`rnn predict` pays for neither yaml nor tqdm, and `rnn --help` for no model code.
"""

from __future__ import annotations

import gc
import importlib
import sys
import warnings

import click

from .. import __version__
from .common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, _fail, _silence_stdout

#: command name -> (module of rnncli.cli, function name): imported on first use
COMMANDS = {
    "eval": ("text", "evaluate_cmd"),
    "export": ("export", "export"),
    "fill": ("fill", "fill"),
    "predict": ("predict", "predict"),
    "quantize": ("quantize", "quantize"),
    "report": ("report", "report"),
    "score": ("text", "score"),
    "tokenize": ("text", "tokenize"),
    "train": ("train", "train"),
}


class _Rnn(click.Group):
    """The `rnn` group, with click's own usage errors in the house style: one line, `rnn: error: ...`.

    Click prints a usage block and "Error: ..." on several lines; scripts that read stderr (and the
    README's promise) want one line, with the exit code click chose (2 for usage errors).
    """

    def list_commands(self, ctx) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)

    def main(self, *args, **kwargs):
        """Run a command with the cyclic garbage collector's first generation 100,000 allocations
        long, not 700: a command's start imports NumPy and the model code, thousands of objects
        that it would scan again and again (`rnn predict` starts 6% faster; benchmarks/bench_predict.py).
        Arrays are not in its care and a long run still collects; the setting is restored after.

        Called with no argument list, as the `rnn` program and `python -m rnncli` call it, the
        command's argv is the process's and the process ends with it: every object left is then
        frozen out of the collector's sight (`gc.freeze`), so that the interpreter's shutdown does
        not scan them all once more (13 ms of `rnn predict`'s 130; files, atexit handlers and module
        teardown are as before). An argument list (click's CliRunner, a caller's own), or
        standalone_mode=False (a caller that goes on), leaves the collector as it found it."""
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, *thresholds[1:])
        try:
            return self._main(*args, **kwargs)
        finally:
            gc.set_threshold(*thresholds)
            if not args and "args" not in kwargs and kwargs.get("standalone_mode", True):
                gc.freeze()

    def _main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
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
            _fail(f"no command given: one of {', '.join(sorted(COMMANDS))}; see 'rnn --help'", EXIT_USAGE)
        except click.ClickException as e:
            message = " ".join(e.format_message().split())
            where = getattr(getattr(e, "ctx", None), "command_path", None)
            if where is None:  # errors of the option parser carry no context: name the command given
                command = next((a for a in argv if not a.startswith("-")), None)
                where = f"rnn {command}" if command in COMMANDS else "rnn"
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
        from ..errors import UsageError

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
