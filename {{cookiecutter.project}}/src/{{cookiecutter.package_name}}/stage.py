"""What every stage's entry point shares: run from the project root, report errors in one place."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .params import Params, ParamsError, load_params


class StageError(RuntimeError):
    """A stage cannot produce its outputs; the message says why."""


def run_stage(name: str, body: Callable[[Params], None]) -> None:
    """Load params, run one stage and turn expected failures into a clear message and exit 1."""
    try:
        body(load_params())
    except (ParamsError, StageError) as err:
        print(f"{name}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
