"""Strict JSON out: a float that is NaN or infinite becomes null, so every line parses everywhere.

Python's json module writes ``NaN`` and ``Infinity`` by default, which JSON does not have and
most parsers (jq, JavaScript, Go) reject.  Every JSON line rnn prints or records goes through here.
"""

from __future__ import annotations

import json
import math


def finite(obj):
    """obj with every non-finite float (in dicts, lists and tuples, at any depth) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
