"""Compatibility re-export: bag reading and writing moved to the ground-floor ``dfer_ros.bag_io``."""
from dfer_ros.bag_io import *  # noqa: F401,F403
from dfer_ros.bag_io import BagError, BagImage, BagInfo, BagWriter  # noqa: F401
