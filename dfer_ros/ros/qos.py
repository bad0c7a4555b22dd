"""QoS profiles of the node's topics, from its parameters.

Images use sensor-data QoS by default (best effort, volatile, keep last 5) like camera drivers do; a
best-effort subscription also matches a reliable publisher, so this is the setting that talks to most
sources. ``image_qos.reliability: reliable`` is for sources that must not lose frames on a lossy link
(our own processing still keeps only the newest frame). Outputs are reliable, keep last
``output_qos.depth``: they are small and a behaviour node should not miss one. Users can also override the
image subscription's QoS from a params file through rclpy's ``QoSOverridingOptions``
(``qos_overrides./image.subscription.reliability: reliable``), which take precedence.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)


def image_qos(reliability: str = "best_effort", depth: int = 5) -> QoSProfile:
    """Subscription QoS for camera images: sensor data by default."""
    profile = QoSProfile(depth=int(depth))
    profile.history = HistoryPolicy.KEEP_LAST
    profile.durability = DurabilityPolicy.VOLATILE
    profile.reliability = (ReliabilityPolicy.RELIABLE if reliability == "reliable"
                           else qos_profile_sensor_data.reliability)
    return profile


def output_qos(depth: int = 10) -> QoSProfile:
    """Publisher QoS of the per-image outputs: reliable, volatile, keep last ``depth``."""
    return QoSProfile(depth=int(depth), history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def describe(profile: QoSProfile) -> str:
    """Short text of a profile for logs and diagnostics."""
    return f"{profile.reliability.name.lower()}, {profile.durability.name.lower()}, keep last {profile.depth}"
