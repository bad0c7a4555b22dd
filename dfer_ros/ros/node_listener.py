"""Listen to a running ``dfer_node`` from another process: its ``faces/affect`` results and its diagnostics.

The demo and the latency benchmark start the node with ``processes.start_node`` and follow it with a
``NodeListener`` on their own rclpy node: every ``FaceAffectArray`` goes to ``on_result``, the node's
``/diagnostics`` values are kept in ``diagnostics`` (and handed to ``on_diagnostics``), and ``wait_until``
spins until a condition holds while failing fast, with the node's log, if the node process exits.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy

from dfer_ros.msg import FaceAffectArray
from dfer_ros.ros.diagnostics import diagnostic_values


def log_tail(path: Path, chars: int = 3000) -> str:
    """The end of a subprocess log (rclpy's W0000/I0000 noise lines left out)."""
    if not path.exists():
        return "(empty log)"
    lines = [t for t in path.read_text(errors="replace").splitlines() if not t.startswith(("W0000", "I0000"))]
    return "\n".join(lines)[-chars:] or "(empty log)"


class NodeListener:
    """Subscriptions on ``node`` to ``<namespace>/faces/affect`` (reliable) and to ``/diagnostics`` filtered to
    ``<namespace>/dfer_node``."""

    def __init__(self, node, namespace: str, on_result: Callable[[FaceAffectArray], None],
                 on_diagnostics: Optional[Callable[[dict], None]] = None, depth: int = 50):
        self.node = node
        self.namespace = namespace.rstrip("/")
        self.diagnostics: dict[str, str] = {}
        self._on_diagnostics = on_diagnostics
        reliable = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(FaceAffectArray, f"{self.namespace}/faces/affect", on_result, reliable)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 10)

    def _diagnostics(self, msg) -> None:
        if msg.status and msg.status[0].name.startswith(f"{self.namespace}/dfer_node"):
            values = diagnostic_values(msg)
            self.diagnostics.update(values)
            if self._on_diagnostics is not None:
                self._on_diagnostics(values)

    @property
    def active(self) -> bool:
        return self.diagnostics.get("state") == "active"

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float, process=None,
                   log: Optional[Path] = None, step: float = 0.1) -> None:
        """Spin until ``condition()``; RuntimeError naming ``what`` (with the log's tail) on timeout or when
        ``process`` exits first."""
        end = time.monotonic() + timeout
        while not condition():
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"dfer_node exited with code {process.returncode} while waiting for {what}:\n"
                                   f"{log_tail(log) if log else ''}")
            if time.monotonic() > end:
                raise RuntimeError(f"timed out waiting for {what}:\n{log_tail(log) if log else ''}")
            rclpy.spin_once(self.node, timeout_sec=step)
