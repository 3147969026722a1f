"""mlci: package, serve and certify the models of projects made from the MLOps template."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlci")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
