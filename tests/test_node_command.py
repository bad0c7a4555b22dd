"""The one dfer_node command line: namespace, remaps, params files in order, then typed -p values."""
from __future__ import annotations

from pathlib import Path

from dfer_ros.ros.processes import node_command


def test_node_command_orders_and_formats_every_part(tmp_path):
    params_file = tmp_path / "p.yaml"
    args = node_command(namespace="/demo", remaps={"image": "/cam/image"}, params_files=[params_file],
                        params={"model": "default", "use_sim_time": True, "subscribe_compressed": False,
                                "pipeline_config": Path("/x/pipeline.yaml"), "image_qos.depth": 5},
                        extra=["-p", "detection.every:=2"])
    assert args == ["-m", "dfer_ros.ros.node", "--ros-args", "-r", "__ns:=/demo", "-r", "image:=/cam/image",
                    "--params-file", str(params_file.resolve()), "-p", "model:=default", "-p", "use_sim_time:=true",
                    "-p", "subscribe_compressed:=false", "-p", "pipeline_config:=/x/pipeline.yaml",
                    "-p", "image_qos.depth:=5", "-p", "detection.every:=2"]
    assert node_command() == ["-m", "dfer_ros.ros.node", "--ros-args"]
