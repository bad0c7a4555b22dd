"""The training benchmark runs its step on a tiny config (CPU smoke) and reports throughput numbers."""
import json
from pathlib import Path

import torch

from dfer_ros.cli.bench_training import main

REPO = Path(__file__).resolve().parent.parent


def test_training_bench_smoke(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "bench.json"
    assert main(["--model", str(REPO / "models" / "tiny_test.yaml"), "--allow-cpu", "--batch", "2",
                 "--steps", "2", "--warmup", "1", "--frames", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())[0]
    assert res["clips_per_s"] > 0 and res["frames"] == 4 and res["batch"] == 2
    assert res["frames_per_s"] == res["clips_per_s"] * 4
    if not torch.cuda.is_available():
        assert main([]) == 0
        assert "skipped: CUDA is not available" in capsys.readouterr().out
