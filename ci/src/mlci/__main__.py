"""`python -m mlci`: the same command line as the `mlci` script."""

from .cli import main

main()
