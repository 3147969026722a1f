"""`make contract`: draft the data contract (the `validate` section of params.yaml) from the data itself.

It reads the configured source (`ingest.source`, `ingest.target`) and writes, per column, its type, its range
with a margin (numbers) or its allowed values (text), and the share of rows that may miss it; then the row count
and the label: its classes and their balance (classification) or its range (regression). Review the draft and
commit it: from then on the validate stage and the data gate hold every new version of the data to it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .ingest import labelled, read_source
from .params import PARAMS_FILE, Params
from .stage import StageError, run_stage
from .storage import write_text_atomic

# A text column with more distinct values than this is not a category (an id, free text): the draft refuses it.
MAX_CATEGORIES = 100
TARGET_NOTE = {
    "classes": "the label's classes; each holds at least min_class_fraction of the rows",
    "range": "the target's allowed [min, max]",
}
MARGIN = 0.1  # ranges widen by this share of their span; null shares grow by half, plus a point


def draft(frame: pd.DataFrame, target: str, task: str = "classification") -> dict[str, Any]:
    """The `validate` section that `frame` meets, with room for the next version of the same data."""
    if target not in frame.columns:
        raise StageError(f"no target column {target!r} in the data")
    columns: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        if name != target:
            columns[str(name)] = _column(str(name), frame[name])
    return {"min_rows": max(1, len(frame) // 2), "target": _target(frame[target], target, task), "columns": columns}


def _target(labels: pd.Series, name: str, task: str) -> dict[str, Any]:
    """Regression: the target's range with a margin. Classification: its classes and the rare one's share, halved."""
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(labels):
            raise StageError(f"target {name!r} holds text ({labels.iloc[0]!r}): a regression needs a numeric target")
        return {"range": _range(labels.astype(float), pd.api.types.is_integer_dtype(labels))}
    classes = sorted(labels.unique().tolist())
    if len(classes) < 2:
        raise StageError(f"target {name!r} holds a single class ({classes[0]!r}): a classifier needs two or more")
    if len(classes) > MAX_CATEGORIES:
        raise StageError(
            f"target {name!r} holds {len(classes)} distinct values, more than the {MAX_CATEGORIES} classes a "
            "classifier here may have: is it a number to predict (bake with task=regression)?"
        )
    shares = labels.value_counts(normalize=True)
    return {
        "classes": [c.item() if hasattr(c, "item") else c for c in classes],
        "min_class_fraction": max(0.001, math.floor(float(shares.min()) / 2 * 1000) / 1000),
    }


def _column(name: str, values: pd.Series) -> dict[str, Any]:
    present = values.dropna()
    if present.empty:
        raise StageError(f"column {name!r} has no value in any row: drop it from the data")
    missing = float(values.isna().mean())
    spec: dict[str, Any]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        spec = {"type": "number", "range": _range(present.astype(float), pd.api.types.is_integer_dtype(present))}
    else:
        distinct = sorted(str(v) for v in present.unique())
        if len(distinct) > MAX_CATEGORIES:
            raise StageError(
                f"column {name!r} holds {len(distinct)} distinct text values, more than the {MAX_CATEGORIES} a "
                "category may have: drop it (an id?) or encode it as numbers before ingest"
            )
        spec = {"type": "category", "values": distinct}
    if missing:
        spec["max_null_share"] = min(1.0, round(missing * 1.5 + 0.01, 3))
    return spec


def _range(values: pd.Series, whole: bool) -> list[float]:
    low, high = float(values.min()), float(values.max())
    room = (high - low) * MARGIN
    lower, upper = low - room, high + room
    if low >= 0:
        lower = max(lower, 0.0)  # a count or a measure stays non-negative
    if whole:
        return [float(math.floor(lower)), float(math.ceil(upper))]
    return [_round(lower, "down"), _round(upper, "up")]


def _round(value: float, way: str) -> float:
    """`value` to 4 significant digits, rounded outward."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 3)
    rounded = (math.floor if way == "down" else math.ceil)(value / scale) * scale
    return float(f"{rounded:.6g}")


def render(section: dict[str, Any], source: str, rows: int) -> str:
    """The section as params.yaml holds it: one line per column."""

    def flow(value: Any) -> str:
        return yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()

    lines = [
        "validate:",
        f"  # The data contract, drafted by `make contract` from {source} ({rows} rows): review it, then commit it.",
        f"  min_rows: {section['min_rows']}",
        f"  target: {flow(section['target'])}   # {TARGET_NOTE['range' if 'range' in section['target'] else 'classes']}",  # noqa: E501
        "  columns:   # per column: number (range) or category (values), and the share of rows that may miss it",
    ]
    for name, spec in section["columns"].items():
        key = yaml.safe_dump(name, default_style=None).removesuffix("\n...\n").strip()
        lines.append(f"    {key}: {flow(spec)}")
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str) -> str:
    """params.yaml's text with its `validate:` block replaced by `section` (comments of other keys kept)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"validate:\s*(#.*)?$", line)), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[^\s#]", lines[i])), len(lines))
    while end > start + 1 and (lines[end - 1].startswith("#") or not lines[end - 1].strip()):
        end -= 1  # comments and blank lines above the next key are that key's
    return "".join(lines[:start]) + section + "".join(lines[end:])


def contract(params: Params, path: Path = PARAMS_FILE) -> None:
    frame, dropped = labelled(read_source(params.ingest), params.ingest.target)
    if dropped:
        print(f"contract: {dropped} rows without a label ({params.ingest.target!r}) are left out, as ingest does")
    section = draft(frame, params.ingest.target, params.task)
    write_text_atomic(replace_section(path.read_text(), render(section, params.ingest.source, len(frame))), path)
    constant = [name for name in section["columns"] if frame[name].nunique(dropna=False) < 2]
    if constant:
        print(
            f"contract: {', '.join(map(repr, constant))} hold(s) a single value, which the data gate refuses: drop "
            "them from the data, or list them under validate.constant_columns"
        )
    kinds = [spec["type"] for spec in section["columns"].values()]
    print(
        f"contract: wrote the validate section of {path}: {len(kinds)} columns ({kinds.count('number')} numeric, "
        f"{kinds.count('category')} categorical) from {len(frame)} rows; review it, then commit it"
    )


def main() -> None:
    run_stage("contract", contract)


if __name__ == "__main__":
    main()
