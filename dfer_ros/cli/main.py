"""``dfer``: one command with verbs, as ``ros2 <verb>`` has them (``dfer --help``, ``dfer eval --help``, ...).

Every verb is one row of ``VERBS``: a one-line help and the ``module:function`` that parses the verb's own
arguments, or a table of sub-verbs (``dfer eval stills``, ``dfer bag replay``). A verb's module is imported
only when the verb runs, so ``dfer --help`` imports nothing of the library. ``dfer bench`` takes sections
(``dfer_ros.cli.bench``). The old ``dfer-*`` console scripts are rows of ``LEGACY``: each prints one
deprecation line naming its new form, then runs the same function. ``dfer completion bash`` prints a bash
completion script for the verbs, sub-verbs and bench sections.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from dfer_ros.cli.options import load_target as load
from dfer_ros.deprecation import deprecated_command

PROG = "dfer"


@dataclass(frozen=True)
class Verb:
    """One verb: ``target`` (``module:function``, called with the verb's arguments) or ``verbs`` (sub-verbs)."""

    help: str
    target: str = ""
    verbs: dict[str, "Verb"] = field(default_factory=dict)
    ros: str = ""  # a ROS tool: the target takes a full argv and parses only ROS arguments; this says where they
    # are documented (its --help)


VERBS: dict[str, Verb] = {
    "demo": Verb("the node on the sample face video, annotated video and timeline out (make demo)",
                 "dfer_ros.cli.demo:main"),
    "eval": Verb("score the pipeline or a trained model", verbs={
        "video": Verb("the pipeline on a video or a still image: predictions, metrics, plots",
                      "dfer_ros.cli.eval:video_main"),
        "bag": Verb("the pipeline on a rosbag2 image topic, offline or replayed to a node (live)",
                    "dfer_ros.cli.eval:bag_main"),
        "stills": Verb("labelled still images (one folder per class): WAR, UAR, valence",
                       "dfer_ros.cli.eval_stills:main"),
        "verification": Verb("face verification of the re-identification descriptor: ROC, TAR at FAR",
                             "dfer_ros.cli.eval_verification:main"),
        "baseline": Verb("the effect of per-person expression baselines on labelled stills",
                         "dfer_ros.cli.eval_baseline:main"),
        "checkpoint": Verb("a training checkpoint on a dataset split: WAR, UAR, F1, CCC, AU F1",
                           "dfer_ros.cli.evaluate:main"),
        "label-stats": Verb("label shares and flips per 100 records of prediction files",
                            "dfer_ros.cli.label_stats:main"),
    }),
    "bench": Verb("benchmarks that print numbers: the suite, or one SECTION with its own flags",
                  "dfer_ros.cli.bench:dispatch"),
    "train": Verb("train a CLIP-adapter model from a training YAML", "dfer_ros.cli.train:main"),
    "crossval": Verb("k-fold cross-validation of a training YAML", "dfer_ros.cli.crossval:main"),
    "preprocess": Verb("raw videos -> aligned face crops for training", "dfer_ros.cli.preprocess:main"),
    "synthetic-data": Verb("a tiny synthetic dataset in a public layout, for smoke runs",
                           "dfer_ros.cli.synthetic:main"),
    "export": Verb("model config + checkpoint -> runtime folder (ONNX, parity checked)", "dfer_ros.cli.export:main"),
    "build-engine": Verb("TensorRT engines of an exported folder", "dfer_ros.cli.build_engine:main"),
    "fetch-assets": Verb("the sample face videos and face-api weights into the cache",
                         "dfer_ros.cli.fetch_assets:main"),
    "bag": Verb("rosbag2 without the ros2 CLI", verbs={
        "record": Verb("topics into a bag", "dfer_ros.cli.bag_record:main"),
        "replay": Verb("a bag's topics with /clock", "dfer_ros.cli.bag_replay:main"),
    }),
    "params": Verb("the generated parameter files: config/dfer.yaml, the docs table (--write, --markdown)",
                   "dfer_ros.cli.parameters:main"),
    "node": Verb("the ROS 2 lifecycle node (ROS arguments: --ros-args -p model:=...)",
                 "dfer_ros.ros.node_entry:main",
                 ros="Every parameter, its type, range and default: config/dfer.yaml (dfer params)."),
    "video-publisher": Verb("a video file as an image topic (ROS arguments)", "dfer_ros.ros.video_publisher:main",
                            ros="Parameters (video, rate, loop, exit_on_end, ...): docs/node.md, 'Video publisher'."),
}

# old console script -> (its new form, the function it runs); kept for one release, each warns once
LEGACY: dict[str, tuple[str, str]] = {
    "dfer-node": ("dfer node", "dfer_ros.ros.node_entry:main"),
    "dfer-video-publisher": ("dfer video-publisher", "dfer_ros.ros.video_publisher:main"),
    "dfer-eval": ("dfer eval video PATH / dfer eval bag PATH", "dfer_ros.cli.eval:main"),
    "dfer-eval-stills": ("dfer eval stills", "dfer_ros.cli.eval_stills:main"),
    "dfer-eval-verification": ("dfer eval verification", "dfer_ros.cli.eval_verification:main"),
    "dfer-eval-baseline": ("dfer eval baseline", "dfer_ros.cli.eval_baseline:main"),
    "dfer-eval-checkpoint": ("dfer eval checkpoint", "dfer_ros.cli.evaluate:main"),
    "dfer-evaluate": ("dfer eval checkpoint", "dfer_ros.cli.evaluate:main"),
    "dfer-bench": ("dfer bench", "dfer_ros.cli.bench:main"),
    "dfer-bench-perception": ("dfer bench throughput", "dfer_ros.cli.bench_perception:main"),
    "dfer-bench-streaming": ("dfer bench streaming", "dfer_ros.cli.bench_streaming:main"),
    "dfer-bench-latency": ("dfer bench latency", "dfer_ros.cli.bench_latency:main"),
    "dfer-bench-training": ("dfer bench training", "dfer_ros.cli.bench_training:main"),
    "dfer-bench-soak": ("dfer bench soak", "dfer_ros.cli.bench_soak:main"),
    "dfer-bench-reid": ("dfer bench reid", "dfer_ros.cli.bench_reid:main"),
    "dfer-train": ("dfer train", "dfer_ros.cli.train:main"),
    "dfer-export": ("dfer export", "dfer_ros.cli.export:main"),
    "dfer-build-engine": ("dfer build-engine", "dfer_ros.cli.build_engine:main"),
    "dfer-preprocess": ("dfer preprocess", "dfer_ros.cli.preprocess:main"),
    "dfer-crossval": ("dfer crossval", "dfer_ros.cli.crossval:main"),
    "dfer-demo": ("dfer demo", "dfer_ros.cli.demo:main"),
    "dfer-bag-replay": ("dfer bag replay", "dfer_ros.cli.bag_replay:main"),
    "dfer-bag-record": ("dfer bag record", "dfer_ros.cli.bag_record:main"),
    "dfer-fetch-assets": ("dfer fetch-assets", "dfer_ros.cli.fetch_assets:main"),
}


def _help(prog: str, description: str, verbs: dict[str, Verb]) -> str:
    width = max(len(name) for name in verbs) + 2
    lines = [f"usage: {prog} VERB [ARGUMENTS ...]", "", description, "", "verbs:"]
    lines += [f"  {name:<{width}}{verb.help}" for name, verb in verbs.items()]
    lines += ["", f"`{prog} VERB --help` describes each verb."]
    if prog == PROG:
        lines.append(f"`source <({PROG} completion bash)` completes verbs in bash.")
    return "\n".join(lines)


def run(argv: Sequence[str], prog: str = PROG, verbs: Optional[dict[str, Verb]] = None,
        description: str = "Facial expression, valence-arousal and action units over time, for ROS 2.") -> int:
    """Run the verb named by ``argv[0]`` with the rest of ``argv``; help and unknown verbs as argparse has them."""
    verbs = VERBS if verbs is None else verbs
    if not argv or argv[0] in ("-h", "--help"):
        print(_help(prog, description, verbs))
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    if prog == PROG and name == "completion":
        return completion(rest)
    verb = verbs.get(name)
    if verb is None:
        print(_help(prog, description, verbs).split("\n")[0], file=sys.stderr)
        print(f"{prog}: error: unknown verb {name!r}; choose from {', '.join(verbs)}", file=sys.stderr)
        return 2
    if verb.verbs:
        return run(rest, f"{prog} {name}", verb.verbs, verb.help)
    if verb.ros:
        own = rest[:rest.index("--ros-args")] if "--ros-args" in rest else rest
        if own and own[0] in ("-h", "--help"):  # rclpy parses only ROS arguments: the help is ours
            print(f"usage: {prog} {name} [--ros-args -p NAME:=VALUE ... --params-file FILE ...]\n\n{verb.help}\n\n"
                  f"{verb.ros}")
            return 0
        return load(verb.target)([f"{prog} {name}", *rest])
    return load(verb.target)(rest)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``dfer`` console script."""
    return run(list(sys.argv[1:] if argv is None else argv))


def completion(argv: Sequence[str]) -> int:
    """``dfer completion bash``: a bash completion script for verbs, sub-verbs and bench sections
    (``source <(dfer completion bash)``); flags after a verb complete as file names."""
    if list(argv) != ["bash"]:
        print(f"usage: {PROG} completion bash   (then: source <({PROG} completion bash))", file=sys.stderr)
        return 2
    from dfer_ros.cli.bench import SECTION_NAMES

    cases = [f'        {name}) words="{" ".join(verb.verbs)}" ;;' for name, verb in VERBS.items() if verb.verbs]
    cases.append(f'        bench) words="{" ".join(SECTION_NAMES)}" ;;')
    print("\n".join([
        "_dfer() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} words",
        "    if [ \"$COMP_CWORD\" -eq 1 ]; then",
        f'        words="{" ".join(VERBS)} completion"',
        "    elif [ \"$COMP_CWORD\" -eq 2 ]; then",
        "        case ${COMP_WORDS[1]} in",
        *cases,
        "        completion) words=bash ;;",
        "        esac",
        "    fi",
        "    if [ -n \"$words\" ] && [[ $cur != -* ]]; then",
        "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))",
        "    else",
        "        COMPREPLY=($(compgen -f -- \"$cur\"))",
        "    fi",
        "}",
        "complete -o filenames -F _dfer dfer",
    ]))
    return 0


def _legacy(old: str, new: str, target: str) -> Callable[[Optional[Sequence[str]]], int]:
    def run_target(argv: Optional[Sequence[str]] = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        return load(target)([old, *args] if target.startswith("dfer_ros.ros.") else args)  # ROS tools: full argv

    return deprecated_command(old, new, run_target)


# the old console scripts' entry points: dfer_ros.cli.main:dfer_eval, ...
for _old, (_new, _target) in LEGACY.items():
    globals()[_old.replace("-", "_")] = _legacy(_old, _new, _target)


if __name__ == "__main__":
    sys.exit(main())
