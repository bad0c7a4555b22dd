"""The package layering, checked by parsing every module's imports with ``ast`` (top-level and lazy ones).

Rules (docs/architecture.md):
* the core (``dfer_ros.perception``) imports neither ROS, torch, ``estimators``, ``evaluation``,
  ``training`` nor ``cli``;
* nothing outside ``cli`` imports ``cli``;
* only ``cli`` (and ``dfer_ros.deprecation``, the argparse action that renames the CLIs' old flags) imports an
  argument parser: library modules take typed arguments, and a documented ``python -m dfer_ros.<pkg>.<module>``
  command runs its ``cli`` module through ``dfer_ros.commands.exec_cli``; and outside ``cli`` only the modules in
  ``ARGV_READERS`` read ``sys.argv``;
* every import between packages is one of ``ALLOWED`` below;
* no import cycles, between packages or between modules.

``python tests/test_layering.py`` prints the allowed dependencies and the ones in use.
"""
from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dfer_ros"

# The layers, bottom up, one per folder of dfer_ros/. "base" is the ground floor: the top-level modules
# (assets, typed_config, vocabulary, bag_io, bag_types, ...). "datasets" (dataset readers and label parsers)
# and "scoring" (metrics and their plots) sit below both evaluation and training, which are siblings.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "perception": {"base"},
    "backends": {"base"},
    "datasets": {"base"},
    "scoring": {"base"},
    "clip_adapter": {"base", "backends"},
    "estimators": {"base", "perception", "backends", "clip_adapter"},
    "ros": {"base", "perception", "backends", "estimators"},
    "evaluation": {"base", "perception", "datasets", "scoring", "ros"},
    "training": {"base", "perception", "backends", "clip_adapter", "estimators", "datasets", "scoring"},
    "bench": {"base", "perception", "backends", "clip_adapter", "estimators", "datasets", "scoring", "ros",
              "evaluation", "training"},
    "cli": {"base", "perception", "backends", "clip_adapter", "estimators", "datasets", "scoring", "ros",
            "evaluation", "training", "bench"},
}
ROS_MODULES = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "builtin_interfaces", "diagnostic_msgs",
               "launch", "launch_ros", "ament_index_python", "rosidl_runtime_py", "hri_msgs", "dfer_ros.msg")
ARGUMENT_PARSERS = ("argparse", "optparse", "getopt")
PARSER_ALLOWED_OUTSIDE_CLI = ("dfer_ros.deprecation",)
ARGV_READERS = {  # the modules outside cli that may read sys.argv, and why
    "dfer_ros.commands": "exec_cli hands the arguments to the CLI module unread",
    "dfer_ros.ros.node": "the node's arguments are ROS arguments, parsed by rclpy",
    "dfer_ros.ros.video_publisher": "the publisher's arguments are ROS arguments, parsed by rclpy",
}
CORE_FORBIDDEN = ROS_MODULES + ("torch", "transformers", "peft", "dfer_ros.estimators", "dfer_ros.evaluation",
                                "dfer_ros.training", "dfer_ros.cli", "dfer_ros.ros", "dfer_ros.bench")


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE / parts[1]).is_dir() and parts[1] != "msg":
        return parts[1]
    return "base"


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, anywhere in it; ``from X import Y`` counts as
    ``X.Y`` when that is a module of the package, else as ``X``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full if full in known else node.module, node.lineno))
    return out


def _owner(name: str, known: dict[str, Path]) -> str:
    while name not in known and "." in name:
        name = name.rpartition(".")[0]
    return name


def project_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    """(module -> project modules it imports, (package, package) -> example 'file:line' of each edge)."""
    known = modules()
    graph: dict[str, set[str]] = collections.defaultdict(set)
    edges: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for module, path in known.items():
        for name, line in imports(path, known):
            if not name.startswith("dfer_ros") or name.startswith("dfer_ros.msg"):
                continue
            target = _owner(name, known)
            if target == module or target == "dfer_ros":
                continue
            graph[module].add(target)
            src, dst = package_of(module), package_of(target)
            if src != dst:
                edges[(src, dst)].append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return graph, edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in list(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def allowed_table() -> str:
    _, edges = project_graph()
    used = collections.defaultdict(set)
    for src, dst in edges:
        used[src].add(dst)
    lines = ["package        may import (* = used now)"]
    for pkg, deps in ALLOWED.items():
        lines.append(f"{pkg:<14} " + (", ".join(f"{d}{'*' if d in used[pkg] else ''}" for d in sorted(deps))
                                      or "-"))
    return "\n".join(lines)


def test_the_core_imports_no_ros_torch_models_evaluation_training_or_cli():
    known = modules()
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for module, path in known.items() if package_of(module) == "perception"
           for name, line in imports(path, known) if name.startswith(CORE_FORBIDDEN)]
    assert bad == [], "\n".join(bad)


def test_nothing_imports_cli():
    _, edges = project_graph()
    bad = [where for (src, dst), wheres in edges.items() if dst == "cli" for where in wheres]
    assert bad == [], "\n".join(bad)


def test_only_cli_parses_command_lines():
    known = modules()
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for module, path in known.items()
           if package_of(module) != "cli" and module not in PARSER_ALLOWED_OUTSIDE_CLI
           for name, line in imports(path, known) if name.split(".")[0] in ARGUMENT_PARSERS]
    assert bad == [], "argument parsing belongs in dfer_ros/cli (docs/architecture.md):\n" + "\n".join(bad)


def argv_reads(path: Path) -> list[int]:
    """Lines of the file that read ``sys.argv`` (or import ``argv`` from ``sys``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name)
                and node.value.id == "sys"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "argv" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_cli_reads_the_command_line():
    bad = [f"{path.relative_to(ROOT)}:{line} reads sys.argv"
           for module, path in modules().items() if package_of(module) != "cli" and module not in ARGV_READERS
           for line in argv_reads(path)]
    assert bad == [], "argument parsing belongs in dfer_ros/cli (docs/architecture.md):\n" + "\n".join(bad)


def test_the_argv_finder_finds_reads(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\nfrom sys import argv\nx = sys.argv[1:]\ny = sys.executable\n")
    assert argv_reads(sample) == [2, 3]


def test_every_dependency_between_packages_is_allowed(capsys):
    _, edges = project_graph()
    with capsys.disabled():
        print("\n" + allowed_table())
    assert set(package_of(m) for m in modules()) <= set(ALLOWED)
    bad = [f"{src} -> {dst}: " + "; ".join(wheres[:3]) for (src, dst), wheres in sorted(edges.items())
           if dst not in ALLOWED[src]]
    assert bad == [], "\n".join(bad)


def test_the_rules_are_layers_of_whole_folders():
    """Each package may import only packages listed before it in ``ALLOWED`` (bottom up), and every folder of
    dfer_ros/ is one package: no part of a folder is a layer of its own."""
    order = list(ALLOWED)
    for i, pkg in enumerate(order):
        assert ALLOWED[pkg] <= set(order[:i]), (pkg, ALLOWED[pkg] - set(order[:i]))
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file() and p.name != "msg"}
    assert folders == set(ALLOWED) - {"base"}


def test_no_import_cycles():
    graph, edges = project_graph()
    assert cycles(graph) == []
    package_graph: dict[str, set[str]] = collections.defaultdict(set)
    for src, dst in edges:
        package_graph[src].add(dst)
    assert cycles(package_graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


if __name__ == "__main__":
    print(allowed_table())
