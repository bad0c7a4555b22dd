"""``with ros_session(args):`` — rclpy.init() as a context manager on every distro.

Kilted's ``rclpy.init()`` returns a context manager (``with rclpy.init():``); Jazzy's returns None and
only ``Context()`` is one, whose ``__enter__`` cannot take ``args`` (the ``--ros-args`` of the command line).
This gives both the same shape: init with args and signal handlers, and a shutdown that always runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence


@contextmanager
def ros_session(args: Optional[Sequence[str]] = None) -> Iterator[None]:
    import rclpy

    handle = rclpy.init(args=list(args) if args is not None else None)
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
