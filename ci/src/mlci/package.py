"""Public API: `package`, which a project's package stage calls (see ci/README.md)."""

from .packaging.package import package

__all__ = ["package"]
