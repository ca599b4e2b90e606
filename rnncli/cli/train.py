"""`rnn train`: the training run, its progress on stderr, and the way back after a stop."""

from __future__ import annotations

import shlex
import sys

import click

from .. import strictjson
from ..errors import RnnError
from .common import emit, format_option, plural, reports_errors, usage


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
            from ..metrics import perplexity

            self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
            self.bar.set_postfix(
                loss=f"{self.loss:.3f}",
                ppl=f"{perplexity(min(self.loss, 50)):.1f}",
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


@click.command()
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
        raise usage("--resume and --overwrite exclude each other")
    if resume_from is not None and not resume:
        raise usage("--from NAME chooses the checkpoint that --resume continues from; add --resume")
    from dataclasses import asdict

    from ..api import train as train_run
    from ..checkpoint import remember_last_run
    from ..comm import communicator
    from ..errors import TrainingInterrupted
    from ..signals import StopRequest, handle_signals

    comm = communicator()  # MPI when started by mpirun/mpiexec, else one process (mpi4py not imported)
    resume_line = _resume_command(config, overrides, comm.size)
    try:
        reporter = _BarReporter(quiet)
        # a process concern: .rnn/last_run names the run from its first checkpoint on (rank 0 alone hears it)
        reporter.saved = lambda run_dir, checkpoint: remember_last_run(run_dir)
        with handle_signals(StopRequest(_stop_notice(resume_line, comm.size) if comm.is_root else None)) as stop:
            summary = asdict(
                train_run(
                    config,
                    list(overrides),
                    resume=resume,
                    overwrite=overwrite,
                    reporter=reporter,
                    stop=stop,
                    comm=comm,
                    resume_from=resume_from or "last",
                )
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


def _epochs_trained(summary: dict) -> str:
    """'3 epochs'; '2 epochs and 45% of the third' or '3% of an epoch' when train.max_tokens
    stopped the run inside an epoch."""
    whole, part = summary.get("epochs_completed", summary["epochs"]), summary.get("partial_epoch", 0.0)
    if not part:
        return plural(whole, "epoch")
    share = f"{part:.0%}" if part >= 0.01 else "under 1%"
    if whole == 0:
        return f"{share} of an epoch (stopped at train.max_tokens)"
    return f"{plural(whole, 'epoch')} and {share} of epoch {whole + 1} (stopped at train.max_tokens)"


def _quiet_unless_root(e: RnnError, comm) -> RnnError:
    """Under MPI every worker raises the same error (decisions are agreed); only rank 0 prints it."""
    if not comm.is_root:
        e.silent = True
    return e
