"""A ``rosbags`` typestore that knows the standard ROS 2 Jazzy messages AND dfer_ros's own messages.

rosbags is pure Python and has no access to the generated ``dfer_ros.msg`` classes, so the custom
messages are registered from the ``msg/*.msg`` text: from the source checkout when there is one,
else from the installed share folder (``<prefix>/share/dfer_ros/msg``). The CDR bytes that rosbags
writes for these types are the same that ``rclpy.serialization`` produces, so bags written here play
back to real subscribers and bags recorded from the node read back here.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

from dfer_ros.assets import REPO_ROOT

PACKAGE = "dfer_ros"


class BagTypeError(RuntimeError):
    """The message definitions could not be found or parsed (the message names the folder/file)."""


def msg_dir() -> Path:
    """The folder holding dfer_ros's ``*.msg`` files: the checkout's ``msg/``, else the installed share folder."""
    candidates = [REPO_ROOT / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # ament index missing or package not installed: only the checkout is searched
        pass
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.msg")):
            return folder
    raise BagTypeError("no dfer_ros .msg files found in " + ", ".join(str(c) for c in candidates))


def custom_type_names(folder: Optional[Path] = None) -> list[str]:
    """ROS 2 type names (``dfer_ros/msg/FaceAffectArray``, ...) of the custom messages."""
    folder = folder or msg_dir()
    return sorted(f"{PACKAGE}/msg/{p.stem}" for p in folder.glob("*.msg"))


@lru_cache(maxsize=4)
def _typestore(folder: str):
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for path in sorted(Path(folder).glob("*.msg")):
        name = f"{PACKAGE}/msg/{path.stem}"
        try:
            types.update(get_types_from_msg(path.read_text(), name))
        except Exception as exc:  # rosbags raises its own parser errors: name the file
            raise BagTypeError(f"{path}: cannot parse message definition: {exc}") from exc
    try:
        store.register(types)
    except Exception as exc:
        raise BagTypeError(f"{folder}: cannot register message types: {exc}") from exc
    return store


def typestore(folder: Optional[Path] = None):
    """Jazzy typestore with every ``dfer_ros/msg/*`` type registered (cached per folder)."""
    return _typestore(str(folder or msg_dir()))
