"""The serving runtime, what the serving image runs: the ASGI app, its wire protocols, metrics and drift.

It imports nothing of mlci but `model` (and `errors`): an import contract in `make lint` keeps it so.
"""
