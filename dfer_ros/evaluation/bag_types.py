"""Compatibility re-export: the rosbags typestore moved to the ground-floor ``dfer_ros.bag_types``."""
from dfer_ros.bag_types import *  # noqa: F401,F403
