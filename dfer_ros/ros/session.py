"""``with ros_session(args):`` — rclpy.init() as a context manager on every distro.

Kilted's ``rclpy.init()`` returns a context manager (``with rclpy.init():``); Jazzy's returns None and
only ``Context()`` is one, whose ``__enter__`` cannot take ``args`` (the ``--ros-args`` of the command line).
This gives both the same shape: init with args and signal handlers, and a shutdown that always runs.

``StopSignals`` is for a process that must always end cleanly (the node): rclpy's own handlers shut the
context down from the signal, so a SIGINT during configure or mid-frame makes the next publish or
lifecycle transition fail ("publisher's context is invalid"), and a second SIGINT while shutting down
(what ``ros2 launch`` sends without a terminal) raises KeyboardInterrupt out of the teardown. Instead,
``ros_session(args, signal_handlers=False)`` plus ``StopSignals`` turn every SIGINT/SIGTERM, any number,
at any time, into one flag that the main loop polls; the teardown then runs with the context still valid.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """``with StopSignals() as stop:`` — SIGINT and SIGTERM only set ``stop`` (a threading.Event).

    Python runs the handler in the main thread between bytecodes, so it never interrupts a teardown. On
    exit the previous handlers come back, unless a stop was requested: then the process is ending, and a
    signal that lands during interpreter exit (the second of two SIGINTs) is ignored instead of turning a
    clean exit into death by SIGINT.
    """

    def __init__(self):
        self.event = threading.Event()
        self.signals: list[int] = []
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.signals.append(signum)
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def __enter__(self) -> "StopSignals":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if self.event.is_set() else handler)


def release_held_signals() -> None:
    """Unblock SIGINT/SIGTERM, blocked from interpreter start by the ``dfer_ros_hold_signals.pth`` start-up hook
    so that none is lost across the ROS wheels' re-exec; one pending meanwhile is delivered now, to the handler
    that must already be installed (``StopSignals``)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))


@contextmanager
def ros_session(args: Optional[Sequence[str]] = None, signal_handlers: bool = True) -> Iterator[None]:
    """rclpy.init(args) ... shutdown; ``signal_handlers=False``: rclpy installs no SIGINT/SIGTERM handler."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    options = SignalHandlerOptions.ALL if signal_handlers else SignalHandlerOptions.NO
    handle = rclpy.init(args=list(args) if args is not None else None, signal_handler_options=options)
    if handle is not None and hasattr(handle, "__exit__"):  # Kilted and later
        with handle:
            yield
        return
    try:
        yield
    finally:
        try:
            rclpy.try_shutdown()
        except Exception as exc:  # noqa: BLE001 - rclpy raises its private RCLError here
            # rclpy's SIGINT handler shuts the context down from its own thread; when Ctrl-C lands just
            # before this point, try_shutdown's ok()-then-shutdown races with it. Already down is fine.
            if "already called" not in str(exc):
                raise
