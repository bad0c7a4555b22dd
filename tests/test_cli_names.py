"""Console scripts: every entry point resolves, the README table lists each one, and old names and flags
still work for one release with a deprecation warning."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def entry_points() -> dict[str, str]:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"(dfer-[a-z-]+) = ([a-z_.]+:[a-z_]+)"', text))


def test_every_entry_point_resolves_and_lives_at_the_edge():
    points = entry_points()
    assert "dfer-eval-checkpoint" in points and "dfer-evaluate" in points
    for name, target in points.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
        # argument parsing lives in cli/; the node and the video publisher take only ROS arguments (rclpy parses them)
        assert module.startswith(("dfer_ros.cli.", "dfer_ros.ros.")), (name, module)


def test_readme_table_lists_every_command():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Commands"):]
    listed = set(re.findall(r"^\| `(dfer-[a-z-]+)` \|", table, flags=re.M))
    assert listed == set(entry_points()) - {"dfer-evaluate"}  # the old name is mentioned, not tabled


def test_old_flags_still_work_with_a_warning(capsys):
    from dfer_ros.cli import eval as eval_cli

    args = eval_cli.build_parser().parse_args(["--video", "v.mp4", "--quiet", "--config", "p.yaml"])
    assert args.no_progress is True and str(args.pipeline_config) == "p.yaml"
    err = capsys.readouterr().err
    assert "--quiet is deprecated" in err and "--no-progress" in err and "--config is deprecated" in err
    args = eval_cli.build_parser().parse_args(["--video", "v.mp4", "--no-progress", "--pipeline-config", "p.yaml"])
    assert args.no_progress is True and str(args.pipeline_config) == "p.yaml"
    assert capsys.readouterr().err == ""


def test_old_command_name_warns_and_runs_the_new_one(capsys):
    from dfer_ros.cli.evaluate import deprecated_main

    with pytest.raises(SystemExit) as exit_info:
        deprecated_main(["--help"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr()
    assert "dfer-evaluate is deprecated" in captured.err and "dfer-eval-checkpoint" in captured.out
