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
import os
import sys

import click

from . import __version__
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
            return fn(*args, **kwargs)
        except RnnError as e:
            _fail(str(e), e.exit_code)
        except BrokenPipeError:
            # the reader went away (`rnn predict - | head -1`): stop quietly
            # and point stdout at /dev/null so the interpreter's final flush cannot fail again
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            sys.exit(EXIT_OK)
        except KeyboardInterrupt:
            click.echo("rnn: interrupted", err=True)
            sys.exit(130)

    return wrapper


def emit(line: str) -> None:
    """One line of data on stdout, flushed so that pipeline consumers see it at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--overwrite", is_flag=True, help="Start a new run even if checkpoint.dir holds one.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-epoch lines on stderr.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: print one JSON object with the run's summary on stdout.",
)
@reports_errors
def train(config, overrides, resume, overwrite, quiet, fmt):
    """Train a model as CONFIG says (a YAML file; see configs/reference.yaml)."""
    if resume and overwrite:
        raise _usage("--resume and --overwrite exclude each other")
    from .config import load_config
    from .train import run_training

    cfg = load_config(config, overrides)
    summary = run_training(cfg, resume=resume, overwrite=overwrite, reporter=_BarReporter(quiet))
    if fmt == "json":
        emit(json.dumps(summary))
    else:
        valid = f"{summary['valid_ppl']:.2f}" if summary["valid_ppl"] is not None else "n/a"
        best = f"{summary['best_valid_ppl']:.2f}" if summary["best_valid_ppl"] is not None else "n/a"
        emit(
            f"trained {summary['epochs']} epochs, {summary['tokens']:,} tokens in {summary['train_seconds']:.1f} s "
            f"({summary['tokens_per_sec']:,.0f} tokens/s)"
        )
        emit(f"valid perplexity {valid} (best {best})")
        emit(f"checkpoint {summary['checkpoint']}")


def _usage(message: str):
    from .errors import UsageError

    return UsageError(message)


# -------------------------------------------------------------------- predict
def _prompts(args: tuple[str, ...]):
    """Prompts from the arguments, or one per line from stdin when none or '-' is given."""
    if args and args != ("-",):
        if "-" in args:
            raise _usage("give prompts as arguments or '-' for stdin, not both")
        yield from args
        return
    for line in sys.stdin:
        yield line.rstrip("\r\n")


@main.command()
@click.argument("prompts", nargs=-1)
@click.option(
    "--checkpoint",
    "-c",
    "checkpoint",
    metavar="DIR",
    help="Run folder or checkpoint folder [default: $RNN_CHECKPOINT, else the last `rnn train` here].",
)
@click.option(
    "--top-k", "-k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="How many next words to show."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per prompt per line.",
)
@click.option("--show-unk", is_flag=True, help="Also offer <unk> and <eos> as predictions.")
@click.option(
    "--generate",
    "-g",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Continue each prompt by N sampled words instead of listing the top words.",
)
@click.option(
    "--temperature",
    "-t",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Sampling temperature for --generate (0 = always the most likely word).",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed for --generate.")
@reports_errors
def predict(prompts, checkpoint, k, fmt, show_unk, generate, temperature, seed):
    """Print the most likely next words after each PROMPT (stdin, one per line, when none or '-')."""
    import numpy as np

    from .checkpoint import default_checkpoint
    from .infer import load_model, next_word_probs, sample_continuation, top_k
    from .tokenizer import detokenize

    model, tokenizer, vocab, _ = load_model(default_checkpoint(checkpoint))
    exclude = () if show_unk else (vocab.unk_id, vocab.eos_id)
    many = len(prompts) > 1 or not prompts or prompts == ("-",)

    def context(prompt: str) -> np.ndarray:
        # a prompt starts a sentence: the model sees it after an <eos>
        return np.concatenate([[vocab.eos_id], vocab.encode(tokenizer.tokenize_prompt(prompt))]).astype(np.int32)

    if generate:
        rng = np.random.default_rng(seed)
        for prompt in _prompts(prompts):
            ids = sample_continuation(
                model,
                context(prompt),
                generate,
                rng=rng,
                temperature=temperature,
                exclude=(vocab.unk_id,) if not show_unk else (),
            )
            words = vocab.decode(ids)
            text = detokenize(tokenizer.tokenize_prompt(prompt) + words)
            if fmt == "json":
                emit(json.dumps({"prompt": prompt, "text": text, "continuation": words}, ensure_ascii=False))
            else:
                emit(text)
        return

    def flush(batch: list[str]) -> None:
        probs = next_word_probs(model, [context(p) for p in batch])
        for prompt, p in zip(batch, probs):
            best = [(vocab.itos[i], pr) for i, pr in top_k(p, k, exclude)]
            if fmt == "json":
                emit(
                    json.dumps(
                        {"prompt": prompt, "predictions": [{"word": w, "prob": pr} for w, pr in best]},
                        ensure_ascii=False,
                    )
                )
            else:
                shown = ", ".join(f"{w} {pr:.3f}" for w, pr in best)
                emit(f"{prompt}\t{shown}" if many else shown)

    batch: list[str] = []
    for prompt in _prompts(prompts):
        batch.append(prompt)
        if len(batch) >= 512 or sys.stdin.isatty():
            flush(batch)
            batch = []
    if batch:
        flush(batch)


# ----------------------------------------------------------------------- eval
@main.command("eval")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True, allow_dash=True))
@click.option(
    "--checkpoint",
    "-c",
    "checkpoint",
    metavar="DIR",
    help="Run folder or checkpoint folder [default: $RNN_CHECKPOINT, else the last `rnn train` here].",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-ppl", type=float, default=None, metavar="X", help="Gate: exit 1 when the perplexity is above X.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Parallel streams; 1 carries the hidden state through the whole text (exact).",
)
@reports_errors
def evaluate_cmd(files, checkpoint, fmt, max_ppl, batch_size):
    """Score text (FILES, or stdin when none or '-') with a trained model.

    Prints tokens, cross-entropy, perplexity, top-1/top-5 next-word accuracy and
    the OOV rate.  Every token is predicted, <eos> included, with the hidden
    state carried through the whole text.
    """
    import numpy as np

    from .checkpoint import default_checkpoint
    from .data import iter_file_tokens, resolve_files
    from .errors import DataError
    from .infer import evaluate, load_model

    model, tokenizer, vocab, ckpt = load_model(default_checkpoint(checkpoint))
    data_cfg = ckpt.meta.get("config", {}).get("data", {})
    encoding, errors = data_cfg.get("encoding", "utf-8"), data_cfg.get("errors", "strict")
    if files and "-" not in files:
        paths = resolve_files(list(files), "eval")
        ids = vocab.encode(iter_file_tokens(paths, tokenizer, encoding, errors))
        source = ", ".join(files)
    else:
        if len(files) > 1:
            raise _usage("give files or '-' for stdin, not both")
        ids = vocab.encode(tokenizer.iter_tokens(sys.stdin))
        source = "stdin"
    if ids.size == 0:
        raise DataError(f"no text to evaluate in {source}")
    result = evaluate(model, ids.astype(np.int32), streams=batch_size, start_id=vocab.eos_id, unk_id=vocab.unk_id)
    out = result.as_dict()
    passed = max_ppl is None or out["perplexity"] <= max_ppl
    if max_ppl is not None:
        out["gate"] = {"max_ppl": max_ppl, "passed": passed}
    if fmt == "json":
        emit(json.dumps(out))
    else:
        emit(f"tokens       {out['tokens']}")
        emit(f"loss         {out['loss']:.4f} nats/word ({out['bits_per_word']:.3f} bits/word)")
        emit(f"perplexity   {out['perplexity']:.2f}")
        emit(f"top1         {out['top1']:.4f}")
        emit(f"top5         {out['top5']:.4f}")
        emit(f"oov_rate     {out['oov_rate']:.4f}")
    if not passed:
        _fail(f"gate failed: perplexity {out['perplexity']:.2f} is above --max-ppl {max_ppl:g}", EXIT_FAILURE)


if __name__ == "__main__":  # pragma: no cover
    main()
