"""``python -m engage.cli``."""

from engage.cli import main

main()
