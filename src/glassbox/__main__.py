"""``python -m glassbox``."""

from glassbox.cli import main

main()
