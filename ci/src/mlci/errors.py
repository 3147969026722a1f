"""Errors that a user can fix: the CLI prints them as one line and exits with status 2."""


class MlciError(Exception):
    """A bad input (model, file, option) described in words that name what is wrong."""


class ModelError(MlciError):
    """The model (directory, URI, signature or artifact) cannot be packaged or served."""
