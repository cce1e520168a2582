"""``python -m zsync [...]`` runs the ``zsync`` command (zsync_tui.cli)."""

from zsync_tui.cli import main

raise SystemExit(main())
