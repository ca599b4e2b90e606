"""How much memory the machine can give: the one reader of the kernel's figure, for every check
that refuses work that cannot fit (training, a wide beam, a wide fill) before it starts."""

from __future__ import annotations


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can get without swapping (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
