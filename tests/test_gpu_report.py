"""The GPU report script runs end to end on the CPU in a tiny configuration, so it is known to work
before a GPU machine is lent, and without CUDA (and without --allow-cpu) it skips with a clear line."""
import json
from pathlib import Path

import pytest
import torch

from dfer_ros.bench.gpu_report import SECTIONS
from dfer_ros.cli.gpu_report import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_report_tiny_on_cpu(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "report.json"
    # compile backend "eager": dynamo traces the step without generating code (inductor on a CPU takes minutes)
    assert main(["--allow-cpu", "--config", str(REPO / "models" / "tiny_test.yaml"), "--out", str(out),
                 "--batches", "1", "2", "--faces", "2", "--steps", "2", "--warmup", "1", "--compile-backend", "eager",
                 "--train-clips-per-class", "2", "--train-batch", "4",
                 "--pytest-args", "tests/test_training_distributed.py -k shared_out"]) == 0
    report = json.loads(out.read_text())
    assert report["errors"] == {}, report["errors"]
    s = report["sections"]
    assert set(s) == set(SECTIONS)
    assert set(s["tower"]) == {"fp16", "bf16", "section_seconds"}
    assert s["tower"]["fp16"]["batches"]["2"]["ms"] > 0 and s["head"]["bf16"]["batches"]["1"]["ms"] > 0
    assert s["streaming"]["fp16"]["faces"] == 2 and s["streaming"]["fp16"]["ms_per_frame"] > 0
    for mode in ("compile_default", "compile_reduce_overhead"):
        assert s["compile"][mode]["max_abs_diff"] < 1e-2, s["compile"][mode]  # the same outputs as eager (fp16)
    assert "skipped" in s["compile"]["cuda_graph"]
    assert s["train"]["clips_per_s"] > 0 and s["train"]["image_size"] == 32
    assert s["ddp"]["returncode"] == 0 and s["ddp"]["backend"] == "gloo", s["ddp"]["output_tail"]
    assert s["pytest"]["returncode"] == 0 and "1 passed" in s["pytest"]["summary"]
    assert report["environment"]["device"] == "cpu" and report["environment"]["tensorrt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: the report runs instead of skipping")
def test_gpu_report_skips_without_cuda(tmp_path, capsys):
    out = tmp_path / "skip.json"
    assert main(["--out", str(out)]) == 0
    assert "skipped: CUDA is not available" in capsys.readouterr().out
    assert "skipped" in json.loads(out.read_text())
