"""Forgetting must not be reported done while the person is still on disk: dfer_node with a gallery file in a
folder mounted read-only (a private mount namespace of the node's process, real DDS). Before, ``~/forget_person``
answered success ``forgot p3``, diagnostics stayed OK and the file still listed p3 after shutdown; now the start-up
WARNs that the folder is not writable, the forget answers failure with the reason, diagnostics go to ERROR, and
the file is untouched (p3 still in it, which is exactly what the failure says)."""
from __future__ import annotations

import json

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 Jazzy wheels) is not installed; run make setup")

from dfer_ros.perception.gallery import FILE_FORMAT  # noqa: E402
from dfer_ros.ros.session import ros_session  # noqa: E402
from dfer_ros.srv import ForgetPerson  # noqa: E402
from read_only_mount import PRELUDE  # noqa: E402
from ros_helpers import read_log, ros_process  # noqa: E402
from test_reid_node_dds import NS, Probe  # noqa: E402

# Runs the node (node_entry.main) after bind-mounting sys.argv[1] read-only in a private mount namespace.
READ_ONLY_NODE = PRELUDE + r"""
sys.argv = ["dfer_node"] + sys.argv[2:]
from dfer_ros.ros.node_entry import main
sys.exit(main())
"""


def test_forget_on_a_read_only_gallery_folder_fails_with_the_reason_and_diagnostics_error(ros_env, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o700)
    gallery = folder / "people.json"
    gallery.write_text(json.dumps({
        "format": FILE_FORMAT, "version": 1, "descriptor": "faceapi_descriptor", "descriptor_size": 128,
        "next_id": 4, "people": [{"person_id": f"p{i}", "last_seen": 4e9, "descriptors": [[0.05 * i] * 128]}
                                 for i in (1, 2, 3)]}))
    gallery.chmod(0o600)
    before = gallery.read_bytes()
    log_path = tmp_path / "dfer_node.log"
    args = ["-c", READ_ONLY_NODE, str(folder), "--ros-args", "-r", f"__ns:={NS}", "-p", "diagnostics_period:=0.5",
            "-p", f"reid.gallery_file:={gallery}"]
    with ros_session():
        with ros_process(args, ros_env, log_path) as proc:
            p = Probe(proc, log_path)
            try:
                p.wait(lambda: any(d.get("state") == "active" for d in p.diagnostics) or proc.poll() is not None,
                       "the node to become active", timeout=120)
            except AssertionError:
                if "NO_READ_ONLY_MOUNT" in read_log(log_path):
                    pytest.skip(read_log(log_path))
                raise
            if "NO_READ_ONLY_MOUNT" in read_log(log_path):
                pytest.skip(read_log(log_path))
            active = [d for d in p.diagnostics if d.get("state") == "active"][-1]
            assert "is not writable" in active.get("notices", ""), active  # said at start-up
            reply = p.call(p.forget_one, ForgetPerson.Request(person_id="p3"))
            assert not reply.success, reply.message
            assert "NOT in the gallery file" in reply.message and "Read-only file system" in reply.message
            p.wait(lambda: p.diagnostics[-1]["level"] == 2, "diagnostics at ERROR after the failed forget")
            assert "a forgotten person is still in the gallery file" in p.diagnostics[-1]["privacy_error"]
            p.node.destroy_node()
    assert proc.returncode == 0, read_log(log_path)
    assert gallery.read_bytes() == before  # p3 is still there: the failure told the truth
