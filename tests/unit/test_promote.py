"""`tune promote` keeps the trial's global batch size (per_device × accum × GPUs) on production's GPUs."""

from __future__ import annotations

import re
import sys

import pytest
from optuna.distributions import FloatDistribution, IntDistribution

from tuner.cli import main
from tuner.config import yaml_io
from tuner.config.block import load_block
from tuner.errors import ConfigError
from tuner.outputs.promote import promote
from tuner.study.store import StudyStore
from tuner.trial.prepare import preview

PD, ACC = "per_device_train_batch_size", "gradient_accumulation_steps"
DIST = {
    "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
    PD: IntDistribution(1, 16),
    ACC: IntDistribution(1, 16),
}


def _study(tmp_path, block, trials, *, record_block=True):
    """A study as `tune start` leaves it; `trials`: (params, trial user attrs, value), all COMPLETE."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    store = StudyStore.open(url, "s")
    attrs = {
        "block_file": str(block),
        "metric": "eval_loss",
        "direction": "minimize",
        "space": {"params": {name: {"target": "training"} for name in DIST}},
    }
    if record_block:
        attrs["block"] = load_block(block).public_dict()
    store.set_attrs(attrs)
    for params, trial_attrs, value in trials:
        store.enqueue(params, {})
        number, got = store.ask({name: DIST[name] for name in params})
        assert got == pytest.approx(params)
        store.tell(number, "COMPLETE", value, attrs=trial_attrs)
    return store, url


def _ran(gpus, per_device, accum):
    """The attrs a trial records (tuner.study.session): GPUs per trial, processes, global batch."""
    processes = max(1, gpus)
    return {"gpus": gpus, "processes": processes, "global_batch_size": per_device * accum * processes}


def _rendered_global_batch(target, tmp_path):
    """What `tune render --config <promoted>` gives, multiplied by the production GPUs."""
    block = load_block(target)
    args = preview(block, {}, tmp_path / "trials").args
    return args[PD] * args[ACC] * block.n_gpus_per_node


def test_same_gpus_keeps_the_tuned_sizes(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 2})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4, PD: 4, ACC: 4}, _ran(2, 4, 4), 1.0)])
    done = promote(store, to=tmp_path / "prod.yaml")
    promoted = load_block(done.target)
    assert (promoted.training.per_device_train_batch_size, promoted.training.gradient_accumulation_steps) == (4, 4)
    assert done.batch_notes == ()
    assert (promoted.provenance["trial_gpus"], promoted.provenance["trial_processes"]) == (2, 2)
    assert promoted.provenance["trial_global_batch_size"] == promoted.provenance["global_batch_size"] == 32
    assert _rendered_global_batch(done.target, tmp_path) == 32


def test_one_gpu_trial_onto_eight_gpus_divides_the_accumulation(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 8})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4, PD: 4, ACC: 8}, _ran(1, 4, 8), 1.0)])
    done = promote(store, to=tmp_path / "prod.yaml")
    promoted = load_block(done.target)
    assert (promoted.training.per_device_train_batch_size, promoted.training.gradient_accumulation_steps) == (4, 1)
    assert promoted.training.learning_rate == pytest.approx(1e-4)
    assert done.batch_notes == (
        "gradient_accumulation_steps 8 -> 1 so the global batch stays 32 on 8 GPUs (trial: 1 GPU)",
    )
    provenance = promoted.provenance
    assert (provenance["trial_gpus"], provenance["trial_processes"]) == (1, 1)
    assert provenance["trial_global_batch_size"] == provenance["global_batch_size"] == 32
    assert _rendered_global_batch(done.target, tmp_path) == 32
    changed = [line for line in done.diff.splitlines() if line[:1] in "+-" and ACC in line]
    assert changed == []  # back to the block's own 1: that line is untouched


def test_per_device_shrinks_to_the_largest_that_divides(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 8})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4, PD: 8, ACC: 3}, _ran(2, 8, 3), 1.0)])
    done = promote(store, to=tmp_path / "prod.yaml")
    promoted = load_block(done.target)
    # 48 / 8 GPUs = 6 per GPU: 8 does not divide 6, so per_device 6 (≤ 8, the largest that does), accum 1
    assert (promoted.training.per_device_train_batch_size, promoted.training.gradient_accumulation_steps) == (6, 1)
    assert done.batch_notes == (
        "per_device_train_batch_size 8 -> 6 and gradient_accumulation_steps 3 -> 1 so the global batch stays 48 "
        "on 8 GPUs (trial: 2 GPUs)",
    )
    assert promoted.provenance["global_batch_size"] == 48
    assert _rendered_global_batch(done.target, tmp_path) == 48


def test_more_gpus_on_the_trial_than_in_production_multiplies_the_accumulation(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 1})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4, PD: 4, ACC: 2}, _ran(4, 4, 2), 1.0)])
    done = promote(store, to=tmp_path / "prod.yaml")
    assert done.batch_notes == (
        "gradient_accumulation_steps 2 -> 8 so the global batch stays 32 on 1 GPU (trial: 4 GPUs)",
    )
    assert _rendered_global_batch(done.target, tmp_path) == 32


def test_impossible_global_batch_is_refused_with_the_values_and_the_fix(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 8})
    trials = [
        ({"learning_rate": 1e-4, PD: 4, ACC: 3}, _ran(1, 4, 3), 1.0),  # 12: not a multiple of 8
        ({"learning_rate": 2e-4, PD: 4, ACC: 4}, _ran(1, 4, 4), 1.5),  # 16: fits
    ]
    store, _ = _study(tmp_path, block, trials)
    message = (
        "n_gpus_per_node: the promoted block must train with the trial's global batch size "
        "(per_device_train_batch_size × gradient_accumulation_steps × n_gpus_per_node = 12, as trial 0 ran on 1 GPU); "
        "12 is not a multiple of n_gpus_per_node 8, so no integer sizes give it (got 8). "
        "Fix: set n_gpus_per_node to a divisor of 12 (1, 2, 3, 4, 6), or promote a trial whose global batch "
        "size is a multiple of 8 with --trial N (e.g. --trial 1)"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        promote(store, to=tmp_path / "prod.yaml")
    assert not (tmp_path / "prod.yaml").exists() and "promotions" not in store.attrs()
    done = promote(store, trial=1, to=tmp_path / "prod.yaml")  # the suggested one works
    assert _rendered_global_batch(done.target, tmp_path) == 16


def test_older_trial_with_only_gpus_computes_its_batch_from_params_and_block(tmp_path, make_block):
    # per_device and accum not tuned: the block's 8 and 1; 1 GPU -> 8; production 2 GPUs -> 4 each.
    block = make_block({"n_gpus_per_node": 2, "runtime_info.input.training.per_device_train_batch_size": 8})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4}, {"gpus": 1}, 1.0)], record_block=False)
    done = promote(store, to=tmp_path / "prod.yaml")
    assert done.batch_notes == (
        "per_device_train_batch_size 8 -> 4 so the global batch stays 8 on 2 GPUs (trial: 1 GPU)",
    )
    provenance = load_block(done.target).provenance
    assert (provenance["trial_processes"], provenance["trial_global_batch_size"], provenance["global_batch_size"]) == (
        1,
        8,
        8,
    )
    assert _rendered_global_batch(done.target, tmp_path) == 8


def test_older_trial_without_batch_attrs_assumes_production_gpus_and_says_so(tmp_path, make_block):
    block = make_block({"n_gpus_per_node": 4})
    store, _ = _study(tmp_path, block, [({"learning_rate": 1e-4, PD: 2, ACC: 2}, {}, 1.0)])
    done = promote(store, to=tmp_path / "prod.yaml")
    promoted = load_block(done.target)
    assert (promoted.training.per_device_train_batch_size, promoted.training.gradient_accumulation_steps) == (2, 2)
    assert done.batch_notes == (
        "trial 0 recorded neither its GPUs nor its global batch size (an older study): assumed it ran on the "
        "production's 4 GPUs, so the batch sizes are kept as tuned (global batch 16)",
    )
    assert promoted.provenance["trial_gpus"] is None and promoted.provenance["trial_global_batch_size"] is None
    assert promoted.provenance["global_batch_size"] == 16


def _tune(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["tune", *args])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, " ".join(captured.out.split()), " ".join(captured.err.split())


def test_cli_prints_the_adjustment_and_refuses_without_traceback(tmp_path, make_block, monkeypatch, capsys):
    block = make_block({"n_gpus_per_node": 8})
    trials = [
        ({"learning_rate": 1e-4, PD: 4, ACC: 4}, _ran(2, 4, 4), 1.0),
        ({"learning_rate": 2e-4, PD: 4, ACC: 3}, _ran(1, 4, 3), 2.0),
    ]
    _, url = _study(tmp_path, block, trials)
    target = tmp_path / "prod.yaml"
    code, out, err = _tune(monkeypatch, capsys, "promote", "s", "--storage", url, "--to", str(target))
    assert code in (0, None), err
    assert "gradient_accumulation_steps 4 -> 1 so the global batch stays 32 on 8 GPUs (trial: 2 GPUs)" in out
    assert f"Promoted trial #0 (eval_loss=1) to {target}" in out
    assert yaml_io.load(target)["provenance"]["global_batch_size"] == 32

    other = tmp_path / "p1.yaml"
    code, out, err = _tune(monkeypatch, capsys, "promote", "s", "--storage", url, "--trial", "1", "--to", str(other))
    assert code == 2 and "Traceback" not in out + err and not other.exists()
    assert "error:" in err and "12 is not a multiple of n_gpus_per_node 8" in err and "(e.g. --trial 0)" in err
