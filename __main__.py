"""`python -m talking_head` runs the command line."""

from .app.cli import main

raise SystemExit(main())
