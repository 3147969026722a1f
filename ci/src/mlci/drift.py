"""Public API: `feature_baseline`, which a project's train stage saves with its model (see ci/README.md)."""

from .model.baseline import feature_baseline

__all__ = ["feature_baseline"]
