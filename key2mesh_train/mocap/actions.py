"""What each MoCap sequence shows, where the data says so (CMU's ``index.tsv``), as coarse
action classes for per-action benchmark rows."""

from __future__ import annotations

import csv
from pathlib import Path

# Checked in order: the first class whose keyword appears in the description wins, so the
# more specific actions come before "walk" (CMU often writes "walk, then jump").
ACTION_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("wave", ("wave",)),
    ("martial arts", ("karate", "kick", "punch", "martial", "heian", "empi", "geri", "barai", "oiduki", "uke")),
    ("basketball", ("basketball", "dribbl", "shoot")),
    ("dance", ("dance", "salsa", "pirouette", "arabesque", "jete", "ballet")),
    ("climb / hang", ("climb", "hang", "swing", "playground", "dangle", "lower self")),
    ("jump / hop", ("jump", "hop", "leap")),
    ("sit", ("sit",)),
    ("run", ("run", "jog")),
    ("walk", ("walk", "step")),
)


def action_class(description: str) -> str:
    text = description.lower()
    for name, keywords in ACTION_KEYWORDS:
        if any(k in text for k in keywords):
            return name
    return "other"


def read_action_index(roots: list[str | Path]) -> dict[str, str]:
    """Sequence name (path below its MoCap root, as ``dataset.sequence_name``) -> description,
    from every ``index.tsv`` (columns ``path`` and ``description``) found at a root."""
    out: dict[str, str] = {}
    for root in map(Path, roots):
        index = root / "index.tsv"
        if not index.is_file():
            continue
        with index.open(newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                if row.get("path") and row.get("description") is not None:
                    out[row["path"]] = row["description"]
    return out
