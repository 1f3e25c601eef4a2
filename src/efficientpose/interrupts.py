"""How the program stops on Ctrl-C and SIGTERM: one line, exit code 130 or 143, partial outputs removed.

While a command starts (nothing is written yet) an interrupt ends it at once; once the command runs, SIGINT raises
KeyboardInterrupt and SIGTERM :class:`Terminated` (a KeyboardInterrupt), so that every cleanup path runs. Exit
codes are 128 + the signal's number, as shells report them.
"""

from __future__ import annotations

import os
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a container stop), raised like Ctrl-C so that the same cleanup runs."""


def leave_now(signum: int, frame: object) -> None:
    """An interrupt while nothing can be half-written (starting up, shutting down): one line, exit at once."""
    os.write(2, b"interrupted\n" if signum == signal.SIGINT else b"terminated\n")
    os._exit(128 + signum)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def raise_on_interrupts() -> tuple[object, object] | None:
    """From now on SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`; returns the handlers this
    replaced (for :func:`restore_handlers`), or None off the main thread, where handlers cannot be set."""
    try:
        return (signal.signal(signal.SIGINT, signal.default_int_handler),
                signal.signal(signal.SIGTERM, _raise_terminated))
    except ValueError:
        return None


def restore_handlers(previous: tuple[object, object] | None) -> None:
    """Put back the handlers :func:`raise_on_interrupts` replaced."""
    if previous is not None:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def interrupted(exc: KeyboardInterrupt) -> int:
    """Say in one line that the run was stopped, and return its exit code: 143 for SIGTERM, 130 for Ctrl-C."""
    terminated = isinstance(exc, Terminated)
    print("terminated" if terminated else "interrupted", file=sys.stderr)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
