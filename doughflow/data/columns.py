"""Optional columns: a source without a group column has no groups, one with a near miss has a typo.

A group (customer, writer, patient) keeps its rows in one split; without one, rows are split by their
near-duplicate component (doughflow.data.split). Whether the data has groups is decided once, at
validate, from the columns of the fetched data, and every later stage reads it from the manifest.
"""

from __future__ import annotations

import difflib

from doughflow.data.manifest import DataManifest


def present_group_column(names: list[str], group_column: str | None, path: str) -> str | None:
    """``group_column`` when the data has it, None when it has no such column (no groups). A column whose
    name is that one in another case or with a typo is more likely a mistake in the config than a source
    without groups: that raises ValueError naming both."""
    if not group_column or group_column in names:
        return group_column or None
    lowered = {name.lower(): name for name in names}
    close = difflib.get_close_matches(group_column.lower(), list(lowered), n=1, cutoff=0.8)
    if close:
        found = lowered[close[0]]
        raise ValueError(
            f"{path}: no group column {group_column!r} (data.group_column), but there is {found!r}: "
            f"set data.group_column={found} (or data.group_column=null for data without groups)"
        )
    return None


def groups_in(manifest: DataManifest, group_column: str | None) -> str | None:
    """The group column of validated data: None when the config names none or validate found none."""
    return group_column if group_column and group_column in manifest.columns else None
