"""`python -m talking_head` runs the command line, as the `talking-head` script does."""

from .app.cli import run

run()
