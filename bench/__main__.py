"""``python -m bench`` (what ``make bench`` runs, and each measured run's child process)."""

from bench.cli import main

raise SystemExit(main())
