"""``python -m promptflow_dsl`` is the ``promptflow`` command."""

from .cli import main

main()
