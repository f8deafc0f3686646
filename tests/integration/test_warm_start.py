"""`tune start --warm-start` for real: a one-trial budget is not used up by the copies, the old best
runs again as the new study's own trial, and status and promote see only that trial."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import create_trial

from tests.integration.conftest import run_tune
from tuner.config.yaml_io import load as load_yaml
from tuner.study.warm import RERUN_ATTR


def test_warm_start_seeds_a_new_study_and_reruns_the_old_best(fast_block, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    old = optuna.create_study(storage=url, study_name="v1")
    old.set_user_attr("metric", "eval_loss")
    dists = {
        "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
        "num_train_epochs": IntDistribution(1, 5),
        "max_instances": IntDistribution(100, 300),
        "warmup_ratio": FloatDistribution(0.0, 0.2),  # not tuned by the new block: dropped
    }
    rows = [
        (2.0, {"learning_rate": 1e-5, "num_train_epochs": 2, "max_instances": 150, "warmup_ratio": 0.1}),
        (1.0, {"learning_rate": 5e-4, "num_train_epochs": 1, "max_instances": 100, "warmup_ratio": 0.0}),  # best
        (1.5, {"learning_rate": 2e-4, "num_train_epochs": 2, "max_instances": 120, "warmup_ratio": 0.1}),
        (0.5, {"learning_rate": 2e-4, "num_train_epochs": 4, "max_instances": 120, "warmup_ratio": 0.1}),  # 4 > 2
    ]
    for value, params in rows:
        old.add_trial(create_trial(value=value, params=params, distributions=dists))

    common = ("--storage", url, "--trials-dir", str(tmp_path / "trials"))
    flags = ("--budget", "1", "--study", "v2", "--scheduler", "none", "--warm-start", "v1")
    done = run_tune("start", "--config", str(fast_block), *flags, *common)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warm start from v1" in done.stderr and "3 trials added" in done.stderr, done.stderr[-3000:]

    trials = optuna.load_study(study_name="v2", storage=url).get_trials()
    copies, own = trials[:3], trials[3:]
    assert [t.user_attrs["warm_start_from"] for t in copies] == [f"{url}/v1#{n}" for n in range(3)]
    assert all("warmup_ratio" not in t.params for t in copies)
    assert len(own) == 1, "a 1-trial budget runs one trial: the copies are not this study's trials"
    rerun = own[0]
    assert rerun.state.name == "COMPLETE" and rerun.user_attrs[RERUN_ATTR] == f"{url}/v1#1"
    assert rerun.params == {"learning_rate": 5e-4, "num_train_epochs": 1, "max_instances": 100}
    assert rerun.value != 1.0  # measured again on this block, not copied
    attrs = optuna.load_study(study_name="v2", storage=url).user_attrs
    assert attrs["warm_start"]["added"] == 3 and attrs["warm_start"]["skipped"] == 1

    status = run_tune("status", "v2", *common[:2])
    assert status.returncode == 0 and status.stdout.count("COMPLETE") == 1, status.stdout
    assert "Warm start from v1" in status.stdout
    promoted = run_tune("promote", "v2", "--to", str(tmp_path / "prod.yaml"), *common[:2])
    assert promoted.returncode == 0, promoted.stderr[-3000:]
    assert load_yaml(tmp_path / "prod.yaml")["provenance"]["trial"] == rerun.number == 3
