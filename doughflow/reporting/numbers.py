"""Numbers as people read them in the report and the model card: three significant figures, grouped
thousands, a unit, and words instead of a raw dict.

Four decimals everywhere ("0.1360", "6.2400" seconds, "234663" bytes) made readers count digits and
guess units; three significant figures carry everything a run's metrics can claim at the test split's
size (a few hundred to a few thousand images: the third figure is already noise).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

SIGNIFICANT = 3


def human(value: Any, unit: str = "") -> str:
    """``0.13604`` -> ``0.136``, ``6.24`` -> ``6.24``, ``1234.5`` -> ``1,235``, ``7.15e-07`` stays
    scientific, ints are grouped (``6,400``); None and NaN -> ``-``. ``unit`` follows after a space."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "-" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        text = f"{int(value):,}"
    elif math.isnan(value := float(value)):
        return "-"
    elif math.isinf(value):
        text = "inf" if value > 0 else "-inf"
    else:
        text = _significant(value)
    return f"{text} {unit}" if unit else text


def _significant(value: float) -> str:
    if value == 0:
        return "0"
    rounded = float(f"{value:.{SIGNIFICANT}g}")
    magnitude = abs(rounded)
    if magnitude >= 1e15 or math.isinf(rounded):  # rounding 1.795e308 overflows; nobody reads 16 digits anyway
        return f"{value:.{SIGNIFICANT - 1}e}"
    if magnitude >= 1000:
        return f"{round(rounded):,}"
    if magnitude < 1e-3:
        return f"{value:.{SIGNIFICANT - 1}e}"
    decimals = max(0, SIGNIFICANT - 1 - math.floor(math.log10(magnitude)))
    return f"{rounded:.{decimals}f}"


def percent(share: Any) -> str:
    """A share (0.9876) as a percentage with three significant figures (``98.8 %``); ``-`` for none."""
    if share is None or isinstance(share, bool) or not isinstance(share, numbers.Real) or math.isnan(float(share)):
        return "-"
    return human(float(share) * 100, "%")


def human_bytes(size: Any) -> str:
    """``234663`` -> ``229 KiB``; ``-`` for none."""
    if size is None or isinstance(size, bool) or not isinstance(size, numbers.Real):
        return "-"
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024
    return human(int(value) if unit == "B" else value, unit)


def human_seconds(seconds: Any) -> str:
    """``6.24`` -> ``6.24 s``, ``725`` -> ``12.1 min``, ``9000`` -> ``2.5 h``."""
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        return "-"
    seconds = float(seconds)
    if abs(seconds) >= 3600:
        return human(seconds / 3600, "h")
    if abs(seconds) >= 120:
        return human(seconds / 60, "min")
    return human(float(seconds), "s")


def words(value: Any, unit: str = "") -> str:
    """A value as a phrase: a mapping as ``key value, key value`` (nested ones in parentheses), a list
    joined by commas, numbers through :func:`human`; underscores in keys become spaces. Numbers under a
    key named ``seconds`` (or ``*_seconds``) are written as times."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            name = str(key).replace("_", " ")
            inner = "s" if str(key) == "seconds" or str(key).endswith("_seconds") else unit
            text = words(item, inner)
            parts.append(f"{name} ({text})" if isinstance(item, dict) else f"{name} {text}")
        return ", ".join(parts) if parts else "none"
    if isinstance(value, (list, tuple)):
        parts = [
            f"({words(item, unit)})" if isinstance(item, (list, tuple, dict)) else words(item, unit) for item in value
        ]
        return ", ".join(parts) if parts else "none"
    return human(value, unit) if isinstance(value, numbers.Real) and not isinstance(value, bool) else human(value)
