"""``python -m monitor`` is the ``brand-monitor`` command."""

from monitor.cli import main

raise SystemExit(main())
