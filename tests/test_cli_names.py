"""The ``dfer`` command: every verb's ``--help`` works (none can silently break), the console scripts are ``dfer``
and the old names, the old names and flags still work for one release with one deprecation line, the docs and the
Makefile use only the new form, and the bash completion offers the verbs."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfer_ros.cli import bench as bench_cli
from dfer_ros.cli import main as dfer

REPO = Path(__file__).resolve().parent.parent


def verb_paths(verbs=None, prefix=()) -> list[tuple[str, ...]]:
    """Every runnable verb as its words, e.g. ("eval", "stills"), ("bench",), ("bench", "crowd")."""
    out = []
    for name, verb in (dfer.VERBS if verbs is None else verbs).items():
        if verb.verbs:
            out += verb_paths(verb.verbs, prefix + (name,))
        else:
            out.append(prefix + (name,))
    return out + ([("bench", section) for section, target in bench_cli.SECTION_COMMANDS.items() if target]
                  if verbs is None else [])


def entry_points() -> dict[str, str]:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"(dfer[a-z-]*) = ([a-z_.]+:[a-z_]+)"', text))


@pytest.mark.parametrize("words", verb_paths(), ids=" ".join)
def test_every_verb_answers_help(words, capsys):
    with pytest.raises(SystemExit) as info:
        code = dfer.main([*words, "--help"])
        raise SystemExit(code)  # a verb that prints its own help returns instead of exiting
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dfer " + " ".join(words)), out[:200]


@pytest.mark.parametrize("words", [(), ("eval",), ("bag",)], ids=lambda w: " ".join(("dfer",) + w))
def test_verb_tables_list_their_verbs(words, capsys):
    assert dfer.main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    table = dfer.VERBS if not words else dfer.VERBS[words[0]].verbs
    assert all(f"  {name} " in out for name in table), out


def test_an_unknown_verb_is_an_error_naming_the_choices(capsys):
    assert dfer.main(["evaluate"]) == 2
    assert "unknown verb 'evaluate'" in capsys.readouterr().err
    assert dfer.main(["eval", "vid"]) == 2
    assert "choose from video, bag" in capsys.readouterr().err
    assert dfer.main([]) == 2


def test_console_scripts_are_dfer_and_the_old_names():
    points = entry_points()
    assert points.pop("dfer") == "dfer_ros.cli.main:main"
    assert set(points) == set(dfer.LEGACY)
    for name, target in points.items():
        module, func = target.split(":")
        assert module == "dfer_ros.cli.main" and callable(getattr(dfer, func)), name
        new_form, _ = dfer.LEGACY[name]
        verb = new_form.split()[1:3]  # each new form names a real verb
        assert verb[0] in dfer.VERBS, name
        if dfer.VERBS[verb[0]].verbs:
            assert verb[1] in dfer.VERBS[verb[0]].verbs, name
        elif verb[0] == "bench" and len(verb) > 1:
            assert verb[1] in bench_cli.SECTION_COMMANDS, name


def test_the_installed_dfer_command_runs():
    exe = Path(sys.executable).parent / "dfer"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed (pip install -e . installs it)")
    done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "eval" in done.stdout and done.stderr == ""


def test_old_command_names_warn_once_and_run_the_new_verb(capsys):
    with pytest.raises(SystemExit) as info:
        dfer.dfer_evaluate(["--help"])
    assert info.value.code == 0
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "dfer-evaluate is deprecated" in captured.err
    assert "use dfer eval checkpoint" in captured.err and captured.out.startswith("usage: dfer eval checkpoint")
    with pytest.raises(SystemExit):
        dfer.dfer_bench_perception(["--help"])
    assert "use dfer bench throughput" in capsys.readouterr().err


def test_old_flags_still_work_with_a_warning(capsys):
    from dfer_ros.cli import eval as eval_cli

    args = eval_cli.build_parser().parse_args(["--video", "v.mp4", "--quiet", "--config", "p.yaml"])
    assert args.no_progress is True and str(args.pipeline_config) == "p.yaml"
    err = capsys.readouterr().err
    assert "--quiet is deprecated" in err and "--no-progress" in err and "--config is deprecated" in err
    args = eval_cli.build_parser("video").parse_args(["v.mp4", "--no-progress", "--pipeline-config", "p.yaml"])
    assert args.no_progress is True and str(args.pipeline_config) == "p.yaml" and args.bag is None
    assert capsys.readouterr().err == ""


def test_bench_sections_run_alone_or_as_the_suite(monkeypatch):
    calls = []
    monkeypatch.setattr(bench_cli, "main", lambda argv: calls.append(("suite", argv)) or 0)
    assert bench_cli.dispatch(["crowd", "latency", "--out", "x.json"]) == 0
    assert calls == [("suite", ["--out", "x.json", "--sections", "crowd", "latency"])]
    assert bench_cli.dispatch(["--out", "y.json"]) == 0
    assert calls[-1] == ("suite", ["--out", "y.json"])
    assert bench_cli.dispatch(["detector_memory", "--out", "z.json"]) == 0  # the suite's own section
    assert calls[-1] == ("suite", ["--out", "z.json", "--sections", "detector_memory"])
    assert bench_cli.dispatch(["quality", "crowd", "--out", "x.json"]) == 2  # quality runs only alone


OLD_NAMES = re.compile(r"(?<![\w/.-])(" + "|".join(sorted(map(re.escape, dfer.LEGACY), key=len, reverse=True))
                       + r")(?![\w-])")


def test_docs_makefile_and_tests_use_only_the_new_names():
    files = [REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").rglob("*.md")),
             *sorted(p for p in (REPO / "tests").glob("*.py") if p.name != Path(__file__).name)]
    bad = [f"{path.relative_to(REPO)}:{i}: {m.group(1)}" for path in files
           for i, line in enumerate(path.read_text().splitlines(), 1) for m in OLD_NAMES.finditer(line)
           if "deprecated" not in line and "old name" not in line]
    assert bad == [], "use the dfer VERB form (dfer_ros/cli/main.py LEGACY):\n" + "\n".join(bad)


def test_bash_completion_offers_verbs_and_sub_verbs(capsys, tmp_path):
    assert dfer.main(["completion", "bash"]) == 0
    script = tmp_path / "dfer.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str) -> list[str]:
        line = " ".join(f"'{w}'" for w in words)
        done = subprocess.run(["bash", "-c", f"source {script}; COMP_WORDS=(dfer {line}); "
                                             f"COMP_CWORD={len(words)}; _dfer; printf '%s\\n' \"${{COMPREPLY[@]}}\""],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("ev") == ["eval"]
    assert complete("eval", "st") == ["stills"]
    assert complete("bench", "cr") == ["crowd"]
    assert complete("bag", "") == ["record", "replay"]


def test_dfer_help_loads_no_verb_module():
    """Verbs load lazily (the ros2cli pattern): ``dfer --help`` imports no verb, no numpy, OpenCV or rclpy (only the
    malloc arena cap that importing ``cli`` applies, ``ros.memory``: ctypes and os)."""
    code = ("import sys; from dfer_ros.cli.main import main; main(['--help']); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('dfer_ros.', 'numpy', 'cv2', 'rclpy')))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.splitlines()[-1].split())
    assert loaded <= {"dfer_ros.cli", "dfer_ros.cli.main", "dfer_ros.cli.options", "dfer_ros.deprecation",
                      "dfer_ros.ros", "dfer_ros.ros.memory", "dfer_ros.user_files"}, loaded


def test_ros_verbs_hand_rclpy_the_full_argv(monkeypatch, capsys):
    """``dfer node`` and the old ``dfer-node`` give the node its program name first, then the ROS arguments."""
    calls = []
    monkeypatch.setattr(dfer, "load", lambda target: lambda argv: calls.append((target, argv)) or 0)
    assert dfer.main(["node", "--ros-args", "-p", "model:=fer2013"]) == 0
    assert dfer.dfer_node(["--ros-args", "-r", "image:=/cam"]) == 0
    assert calls == [("dfer_ros.ros.node_entry:main", ["dfer node", "--ros-args", "-p", "model:=fer2013"]),
                     ("dfer_ros.ros.node_entry:main", ["dfer-node", "--ros-args", "-r", "image:=/cam"])]
    assert "dfer-node is deprecated" in capsys.readouterr().err


def test_every_cli_module_is_a_verb_or_a_bench_section():
    """A new command module (a benchmark, a tool) cannot be left reachable only as ``python -m``."""
    targets = {t.partition(":")[0] for t in bench_cli.SECTION_COMMANDS.values() if t}
    todo = list(dfer.VERBS.values())
    while todo:
        verb = todo.pop()
        todo += verb.verbs.values()
        if verb.target:
            targets.add(verb.target.partition(":")[0])
    modules = {f"dfer_ros.cli.{p.stem}" for p in (REPO / "dfer_ros" / "cli").glob("*.py")}
    assert modules - targets == {"dfer_ros.cli.__init__", "dfer_ros.cli.main", "dfer_ros.cli.options"}
    assert set(bench_cli.SECTIONS) <= set(bench_cli.SECTION_COMMANDS)  # every suite section is a section name


def module_commands() -> list[tuple[str, str, str]]:
    """(library module, its CLI module, the dfer form it names) for every ``python -m dfer_ros...`` module command."""
    out = []
    for path in sorted((REPO / "dfer_ros").rglob("*.py")):
        for cli, form in re.findall(r'exec_cli\("(\w+)", "([^"]+)"\)', path.read_text()):
            out.append((".".join(path.relative_to(REPO).with_suffix("").parts), cli, form))
    return out


def test_module_commands_name_a_dfer_form_that_runs_the_same_cli_module():
    commands = module_commands()
    assert len(commands) >= 15
    targets = {words: target for words, target in
               [((name,), verb.target) for name, verb in dfer.VERBS.items() if not verb.verbs]
               + [((name, sub), v.target) for name, verb in dfer.VERBS.items() for sub, v in (verb.verbs or {}).items()]
               + [(("bench", s), t) for s, t in bench_cli.SECTION_COMMANDS.items() if t]}
    for module, cli, form in commands:
        words = tuple(form.split()[1:])
        assert form.startswith("dfer ") and targets.get(words, "").startswith(f"dfer_ros.cli.{cli}:"), (module, form)


def test_a_module_command_still_runs_with_one_deprecation_line():
    run = subprocess.run([sys.executable, "-m", "dfer_ros.bench.latency_bench", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("usage: dfer bench latency")
    assert run.stderr.strip().splitlines() == [
        "warning: python -m dfer_ros.bench.latency_bench is deprecated and will be removed in the next release; "
        "use dfer bench latency"]
