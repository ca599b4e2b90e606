"""What the Python API returns: frozen dataclasses whose field names are the JSON keys that the CLI
prints, so that ``dataclasses.asdict(result)`` is the JSON record (the CLI adds ``checkpoint``).

Imports nothing but the standard library. The types live in one module per command and are
imported on first use (``from rnncli.results import Prediction`` works as usual): making a frozen
dataclass costs about a millisecond, so `rnn predict` starts faster for not making the others.
"""

from __future__ import annotations

import importlib

#: each result type and the module of this package that defines it
WHERE = {
    "Prediction": "predict",
    "Completion": "complete",
    "Completions": "complete",
    "Generation": "generate",
    "Beam": "generate",
    "Fill": "fill",
    "Fills": "fill",
    "WordScore": "score",
    "Score": "score",
    "Figures": "evaluate",
    "FillAccuracy": "evaluate",
    "Keystrokes": "evaluate",
    "Evaluation": "evaluate",
    "TrainResult": "train",
}
__all__ = sorted(WHERE)


def __getattr__(name: str):
    module = WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
