"""Gate reproducibility: `dvc status` is clean and dvc.lock is committed."""

from __future__ import annotations

from . import GateResult


def verdict(dvc_status: str, lock_committed: bool) -> GateResult:
    """`dvc_status`: what `dvc status` printed (clean: "Data and pipelines are up to date.")."""
    clean = dvc_status.strip() in ("Data and pipelines are up to date.", "")
    measured = {"dvc_status_clean": clean, "dvc_lock_committed": lock_committed}
    if not clean:
        first = dvc_status.strip().splitlines()[0] if dvc_status.strip() else ""
        return GateResult("reproducibility", "fail", measured, "clean", f"dvc status is not clean: {first}")
    if not lock_committed:
        return GateResult("reproducibility", "fail", measured, "clean", "dvc.lock has changes that are not committed")
    return GateResult("reproducibility", "pass", measured, "clean", "dvc.lock matches the outputs and is committed")
