"""GP under ASHA on real trainings (tuner.study.fidelity), and the trial says what GP learnt from: the
default (`--sampler auto`), once 3 trials finished, proposes from every trial's final value, a stopped
one's predicted (`--sampler gp`'s model; its other views are unit-tested on a real SQLite study in
tests/unit/test_fidelity.py)."""

from __future__ import annotations

import optuna

from tests.integration.conftest import processes_mentioning, run_tune
from tests.integration.test_study import _enqueue
from tuner.study.fidelity import MODELLED


def test_the_default_proposes_from_predicted_final_values_once_three_trials_finished(fast_block, tmp_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    good = {"learning_rate": 1e-3, "num_train_epochs": 1, "max_instances": 100}
    _enqueue(url, "auto", fast_block, [good] * 3 + [{**good, "learning_rate": 1e-5}])  # the fourth is stopped
    done = run_tune(
        "start",
        *("--config", str(fast_block), "--budget", "5", "--study", "auto", "--storage", url),
        *("--trials-dir", str(tmp_path / "trials"), "--scheduler", "asha", "--max-concurrent", "1"),
        *("--startup-trials", "2", "--seed", "5"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="auto", storage=url)
    trials = study.get_trials()
    assert [t.state.name for t in trials[:4]] == ["COMPLETE"] * 3 + ["PRUNED"], [t.user_attrs for t in trials]
    assert trials[3].user_attrs["exit_class"] == "pruned" and len(trials[3].intermediate_values) == 1
    # The three finished trials' (first rung, final) pairs predict the stopped one's final value; GP
    # modelled all four, and every trial after (stopped ones spend a third of a trial of the budget).
    assert trials[4].user_attrs[MODELLED] == "predicted final values of 4 trials"
    assert all(t.user_attrs[MODELLED].startswith("predicted final values of ") for t in trials[4:])
    assert MODELLED not in trials[0].user_attrs  # enqueued, not GP's
    assert study.user_attrs["sampler"] == "auto"
    assert processes_mentioning(str(tmp_path / "trials")) == []
    shown = run_tune("status", "auto", "--storage", url)
    assert shown.returncode == 0 and "gp proposed from: #4" in shown.stdout, shown.stdout
    # 2 epochs x 150 samples: a ninth (33) is past the block's 10 % warm-up (30), so the rung stays there
    assert "scheduler asha (first rung at 33 samples)" in shown.stdout, shown.stdout
