"""Looking at a training run: the per-epoch table of metrics.jsonl, and its learning curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import CheckpointError, UsageError

COLUMNS = ("epoch", "tokens", "train_ppl", "valid_ppl", "lr", "tokens_per_sec", "seconds")


def run_folder(path: Path) -> Path:
    """The run folder of path: itself, or the run that holds it when path is one of its checkpoints."""
    path = Path(path)
    if not (path / "metrics.jsonl").exists() and (path.parent / "metrics.jsonl").exists():
        return path.parent
    return path


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of run_dir/metrics.jsonl, one per epoch (a partial epoch has complete: false)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise CheckpointError(f"{path}: not found; give the folder `rnn train` wrote (checkpoint.dir)", exit_code=2)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise CheckpointError(f"{path}:{n}: damaged line (not JSON)") from None
        if not isinstance(record, dict) or "epoch" not in record:
            raise CheckpointError(f"{path}:{n}: damaged line (no epoch)")
        records.append(record)
    if not records:
        raise CheckpointError(f"{path}: empty; the run has not finished an epoch yet")
    return records


def _cell(value, key: str) -> str:
    if value is None:
        return "-"
    if key in ("epoch", "tokens"):
        return f"{int(value):,}"
    if key == "lr":
        return f"{value:g}"
    if key == "tokens_per_sec":
        return f"{value:,.0f}"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf"
    return f"{value:.2f}" if key != "seconds" else f"{value:.1f}"


def format_table(records: list[dict]) -> list[str]:
    """Aligned text rows: a header, then one row per record; the best epoch is starred."""
    header = ("epoch", "tokens", "train ppl", "valid ppl", "lr", "tokens/s", "seconds", "")
    rows = [header]
    for r in records:
        mark = "*best*" if r.get("best") else ("(partial)" if r.get("complete") is False else "")
        rows.append(tuple(_cell(r.get(k), k) for k in COLUMNS) + (mark,))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def require_matplotlib():
    """matplotlib's pyplot, drawing without a screen; a UsageError naming the install when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no screen needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'rnncli[plot]'") from None
    return plt


def plot(records: list[dict], path: Path, title: str) -> None:
    """Train and validation perplexity against training tokens, saved as an image."""
    plt = require_matplotlib()
    tokens = [r["tokens"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(tokens, [r.get("train_ppl") for r in records], marker="o", label="train")
    valid = [(t, r["valid_ppl"]) for t, r in zip(tokens, records) if r.get("valid_ppl") is not None]
    if valid:
        ax.plot(*zip(*valid), marker="o", label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("perplexity")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise UsageError(f"--plot {path}: cannot write ({e.strerror or e})") from None
    finally:
        plt.close(fig)
