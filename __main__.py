"""`python -m talking_head` runs the command line."""

from .core.cli import main

raise SystemExit(main())
