"""``python -m tokenmall``: the ``tokenmall`` CLI where the console script is not on PATH."""

from tokenmall.cli import main

main()
