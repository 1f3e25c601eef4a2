"""The ``efficientpose`` console script's entry point: it installs the interrupt handlers before anything heavy is
imported, so that no interrupt at any moment prints a traceback (:mod:`efficientpose.interrupts`)."""

from __future__ import annotations

import signal
import sys

from efficientpose.interrupts import interrupted, leave_now


def main() -> int:
    """Run ``efficientpose`` with ``sys.argv``; no interrupt at any moment prints a traceback."""
    signal.signal(signal.SIGINT, leave_now)
    signal.signal(signal.SIGTERM, leave_now)
    from efficientpose.cli import main as cli_main  # the heavy imports

    try:
        return cli_main()  # it raises on interrupts while it runs, and hands back to leave_now when it returns
    except KeyboardInterrupt as exc:  # one that came in the moment it handed back
        return interrupted(exc)


if __name__ == "__main__":
    sys.exit(main())
