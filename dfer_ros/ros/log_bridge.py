"""Python ``logging`` records of ``dfer_ros`` (the core, the models, the backends) into the node's ROS logger.

The core logs with Python's ``logging`` (it imports no ROS). With no handler configured, Python printed its
warnings as bare stderr lines ("detector runs are 1.84 s apart ..."): no level, no time, no node name, and not
on ``/rosout``. While the node runs, ``RosLogBridge`` sends every ``dfer_ros.*`` record to the node's logger at
the same level (prefixed with the module, ``[perception.front_end]``), so it has the node's name and reaches
``/rosout``; warnings and errors are also counted (``on_warning``, the node's diagnostics). Records below the
ROS logger's level are not even formatted: the Python logger's level follows the ROS logger's.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

ROOT = "dfer_ros"


def _ros_severity():
    from rclpy.logging import LoggingSeverity

    return LoggingSeverity


class RosLogHandler(logging.Handler):
    """A ``logging.Handler`` that writes to an rclpy logger."""

    def __init__(self, ros_logger, on_warning: Optional[Callable[[logging.LogRecord], None]] = None):
        super().__init__(logging.DEBUG)
        self.ros_logger = ros_logger
        self.on_warning = on_warning

    def emit(self, record: logging.LogRecord) -> None:
        try:
            module = record.name[len(ROOT) + 1:] if record.name.startswith(ROOT + ".") else record.name
            text = f"[{module}] {record.getMessage()}"
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.CRITICAL:
                self.ros_logger.fatal(text)
            elif record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.ros_logger.info(text)
            else:
                self.ros_logger.debug(text)
            if record.levelno >= logging.WARNING and self.on_warning is not None:
                self.on_warning(record)
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def python_level_for(ros_logger) -> int:
    """The Python level that matches the ROS logger's effective level (DEBUG only when ROS shows debug)."""
    severity = _ros_severity()
    level = ros_logger.get_effective_level()
    return {severity.DEBUG: logging.DEBUG, severity.INFO: logging.INFO, severity.WARN: logging.WARNING,
            severity.ERROR: logging.ERROR, severity.FATAL: logging.CRITICAL}.get(severity(level), logging.INFO)


class RosLogBridge:
    """Attach on construction, ``close()`` to detach (restores the ``dfer_ros`` logger as it was)."""

    def __init__(self, ros_logger, on_warning: Optional[Callable[[logging.LogRecord], None]] = None,
                 logger_name: str = ROOT):
        self.logger = logging.getLogger(logger_name)
        self.handler = RosLogHandler(ros_logger, on_warning)
        self._saved = (self.logger.level, self.logger.propagate)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(python_level_for(ros_logger))
        self.logger.propagate = False  # not a second time through a root handler (or Python's bare stderr)

    def close(self) -> None:
        if self.handler in self.logger.handlers:
            self.logger.removeHandler(self.handler)
            self.logger.setLevel(self._saved[0])
            self.logger.propagate = self._saved[1]
