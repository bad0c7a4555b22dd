"""Distributed training: the same YAML on 1 and 2 processes (real torchrun, gloo on CPU) gives the same
metrics, and a 2-process run stopped and resumed ends with the same weights as an uninterrupted one.

Tolerances, and why: the 2-process run computes the same global batches and (by the loss weighting of
losses.py) the same gradients, but sums them in another order, so values differ by float32 rounding
(about 1e-7). The metrics (WAR, UAR, macro F1: counts) must be equal; predictions and losses agree to
1e-5. Weights are compared on what they compute, not one by one: a parameter whose true gradient is
zero (the key bias of attention: softmax ignores it) receives rounding noise that AdamW normalises
into lr-sized steps, so it drifts (measured 5e-4) without changing any output. Resuming a 2-process
run replays the same reductions in the same order: there the weights are compared bitwise.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dfer_ros.cli.train import main as train_main
from dfer_ros.training import synthetic
from dfer_ros.training.losses import MultiTaskLoss
from dfer_ros.training.sampling import EpochBatchSampler

REPO = Path(__file__).resolve().parent.parent
YAML = REPO / "models" / "train_tiny_synthetic.yaml"
# 21 training clips in global batches of 8 (8, 8, 5): the last batch splits 3 + 2, one padding slot
SETTINGS = ["--set", "optim.epochs=2", "--set", "data.max_train_items=21", "--set", "data.test_split=test",
            "--no-progress", "--device", "cpu"]


def _torchrun(args: list[str], timeout: int = 300, processes: int = 2, cuda: bool = False) -> subprocess.CompletedProcess:
    """gloo processes on this host (CUDA hidden unless ``cuda``); --standalone lets the rendezvous pick a free port."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", "dfer_ros.cli.train", str(YAML), *SETTINGS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _history(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    data = synthetic.write_dfew(base / "DFEW", clips_per_class=4, frames=6, size=32, seed=1)
    common = ["--set", f"data.root={data}"]
    torch.set_num_threads(1)
    assert train_main([str(YAML), *SETTINGS, *common, "--out", str(base / "one")]) == 0
    two = _torchrun([*common, "--out", str(base / "two")])
    return {"base": base, "common": common, "two_stdout": two.stdout}


@pytest.mark.slow
def test_two_processes_reach_the_single_process_metrics(runs):
    one, two = runs["base"] / "one", runs["base"] / "two"
    h1, h2 = _history(one), _history(two)
    assert len(h1) == len(h2) == 2
    for a, b in zip(h1, h2):
        for key in ("val_war", "val_uar", "val_macro_f1"):
            assert a[key] == b[key], (key, a[key], b[key])
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["lr"] == b["lr"]
    p1 = np.load(one / "eval_test" / "predictions.npz")
    p2 = np.load(two / "eval_test" / "predictions.npz")
    assert (p1["expression"] == p2["expression"]).all() and len(p1["expression"]) == 6  # every item once
    worst = float(np.abs(p1["probs"] - p2["probs"]).max())
    print(f"1 vs 2 processes: max |probability difference| {worst:.2e}; val_war {[h['val_war'] for h in h1]}")
    assert worst <= 1e-5
    assert json.loads((one / "eval_test" / "metrics.json").read_text())["war"] == \
        json.loads((two / "eval_test" / "metrics.json").read_text())["war"]
    # rank 0 alone speaks: one summary, one line per epoch
    assert runs["two_stdout"].count('"select_metric"') == 1 and runs["two_stdout"].count("epoch 2/2") == 1
    state = json.loads((two / "last" / "train_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 1


@pytest.mark.slow
def test_two_process_resume_gives_the_uninterrupted_weights(runs):
    base, part = runs["base"], runs["base"] / "part"
    # 3 steps per epoch: stop after 4 = inside epoch 2, then resume from last/
    first = _torchrun([*runs["common"], "--out", str(part), "--max-steps", "4"])
    assert "stopped inside epoch 2" in first.stdout
    state = json.loads((part / "last" / "train_state.json").read_text())
    assert state["in_epoch"] == {"epoch": 1, "steps_done": 1, "sums": state["in_epoch"]["sums"],
                                 "count": 8}
    _torchrun([*runs["common"], "--out", str(part), "--resume", str(part / "last")])
    a = load_file(str(base / "two" / "last" / "model.safetensors"))
    b = load_file(str(part / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, differing
    assert [h["val_war"] for h in _history(base / "two")] == [h["val_war"] for h in _history(part)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the nccl backend)")
def test_cuda_torchrun_one_process_takes_nccl(runs):
    out = runs["base"] / "cuda"
    proc = _torchrun([*runs["common"], "--out", str(out), "--device", "cuda"], processes=1, cuda=True)
    assert "backend nccl, device cuda:0" in proc.stdout + proc.stderr
    assert len(_history(out)) == 2 and (out / "best" / "model.safetensors").is_file()


def test_each_global_batch_is_shared_out_once():
    n, batch, world = 21, 8, 2
    single = EpochBatchSampler(n, batch, seed=5)
    ranks = [EpochBatchSampler(n, batch, seed=5, rank=r, world_size=world) for r in range(world)]
    for s in (single, *ranks):
        s.set_epoch(3)
    steps = list(single)
    shares = [list(r) for r in ranks]
    assert len(steps) == 3 and all(len(s) == 3 for s in shares)
    for k, keys in enumerate(steps):
        real = sorted(i for r in range(world) for i, pad in shares[r][k] if not pad)
        assert real == sorted(i for i, _ in keys)  # the single-process batch, no item twice
        assert len(shares[0][k]) == len(shares[1][k])  # every process runs every step
    assert [pad for _, pad in shares[1][2]] == [False, False, True]  # 5 items: 3 + 2 and one padding slot
    ranks[0].set_epoch(3, start_step=2)
    assert list(ranks[0]) == [shares[0][2]]  # resuming at a step
    other = EpochBatchSampler(n, batch, seed=5)
    other.set_epoch(4)
    assert list(other) != steps


def test_loss_weighting_gives_the_global_batch_gradient():
    torch.manual_seed(0)
    logits = torch.randn(10, 7, requires_grad=True)
    batch = {"expression": torch.tensor([0, 1, 2, 3, -1, 5, 6, 0, 1, 2]),
             "va": torch.full((10, 2), float("nan")), "aus": torch.full((10, 12), -1.0)}
    crit = MultiTaskLoss(class_weights=torch.rand(7) + 0.1)
    crit.weights.va = crit.weights.au = 0.0
    out = {"expression_logits": logits}
    full, _ = crit(out, batch)
    (g_full,) = torch.autograd.grad(full, logits)
    shares = [slice(0, 3), slice(3, 10)]
    dens = [crit.denominators({k: v[s] for k, v in batch.items()})["expression"] for s in shares]
    total = sum(dens)
    grads = []
    for s, d in zip(shares, dens):
        part, _ = crit({"expression_logits": logits[s]}, {k: v[s] for k, v in batch.items()},
                       {"expression": 2 * float(d / total)})
        grads.append(torch.autograd.grad(part, logits)[0])
    averaged = (grads[0] + grads[1]) / 2  # what DDP's all_reduce does
    assert torch.allclose(averaged, g_full, atol=1e-7)
    # without the weighting, the mean of the per-process means is another loss
    plain = [crit({"expression_logits": logits[s]}, {k: v[s] for k, v in batch.items()})[0] for s in shares]
    g_plain = (torch.autograd.grad(plain[0], logits)[0] + torch.autograd.grad(plain[1], logits)[0]) / 2
    assert float((g_plain - g_full).abs().max()) > 1e-3


def test_without_torchrun_a_run_is_one_process_and_bad_devices_are_refused():
    from dfer_ros.training.distributed import DistributedSetupError, init_distributed

    single = init_distributed("cpu", env={})
    assert not single.enabled and single.is_main and single.world_size == 1
    assert single.sum_floats({"loss": 2.5}) == {"loss": 2.5}
    launched = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    with pytest.raises(DistributedSetupError, match="LOCAL_RANK"):
        init_distributed("cuda:0", env=launched)


class _RecordingDist:
    """One process of a 2-process evaluation, run in this process: keeps the rows it would all_reduce."""

    def __init__(self, rank: int):
        from dfer_ros.training.distributed import DistContext

        self.ctx = DistContext(rank=rank, world_size=2, backend="recorded")
        self.table = None
        self.ctx.assemble_rows = self._keep  # the all_reduce of the rows, summed by the test instead

    def _keep(self, rows):
        self.table = rows.copy()
        return rows


def test_sharded_evaluation_rows_sum_to_the_single_process_prediction(tmp_path):
    from dfer_ros.training.config import train_config_from_dict
    from dfer_ros.training.trainer import OUTPUT_KEYS, build_dataset, build_model, predict

    torch.set_num_threads(1)
    aw = synthetic.write_affwild2(tmp_path / "AW", videos=6, frames=12, size=32, seed=4)  # 3 validation videos
    for streaming in (True, False):  # whole videos per process / every 2nd item per process
        cfg = train_config_from_dict({"model": str(REPO / "models" / "tiny_test.yaml"),
                                      "data": {"kind": "affwild2", "root": str(aw), "frames": 4, "stride": 2},
                                      "progress": False})
        model, mcfg = build_model(cfg)
        ds = build_dataset(cfg, mcfg, "validation", train=False)
        whole = predict(model, ds, 4, torch.device("cpu"), streaming=streaming)
        shares = [_RecordingDist(r) for r in range(2)]
        for share in shares:
            predict(model, ds, 4, torch.device("cpu"), streaming=streaming, dist=share.ctx)
        owned = [np.abs(s.table).sum(axis=1) > 0 for s in shares]
        assert not (owned[0] & owned[1]).any() and (owned[0] | owned[1]).all()  # each item exactly once
        assert owned[0].any() and owned[1].any()  # both processes work
        summed = shares[0].table + shares[1].table
        cols = np.cumsum([0] + [whole[k].shape[1] for k in OUTPUT_KEYS])
        for k, a, b in zip(OUTPUT_KEYS, cols[:-1], cols[1:]):
            assert np.allclose(summed[:, a:b], whole[k], atol=1e-6), (streaming, k)
