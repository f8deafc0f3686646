"""Studies of several objectives (`experiment.metrics`): the block, preflight, the Pareto front, the
session's records, early stopping on one named metric, promote's pick rule, status and report."""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution
from rich.console import Console

from tests.clock import Clock
from tuner.config.block import load_block
from tuner.config.metrics import check_same_objectives
from tuner.config.preflight import run_preflight
from tuner.config.space import build_space
from tuner.errors import ConfigError
from tuner.orchestrate.plan import SchedulerSettings, scheduler_for
from tuner.study.budget import Budget, Ledger
from tuner.study.front import Condition, dominates, pareto_front, pick_by_rule
from tuner.study.rungs import RungRule, promotable, rung_values
from tuner.study.samplers import make_sampler
from tuner.study.session import StudySession
from tuner.study.store import StudyStore

TWO = {"experiment.metrics": [{"name": "eval_loss"}, {"name": "gpu_hours"}]}
LR = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)}


# -- the block ------------------------------------------------------------------------------------


def test_metrics_make_objectives_with_inferred_directions(make_block):
    e = load_block(make_block(TWO)).experiment
    assert e.multi_objective and [(o.name, o.direction) for o in e.objectives] == [
        ("eval_loss", "minimize"),
        ("gpu_hours", "minimize"),
    ]
    assert e.progress_metric is None and e.describe() == "minimize eval_loss, minimize gpu_hours"
    single = load_block(make_block()).experiment
    assert not single.multi_objective and single.progress_metric == "eval_loss" and len(single.objectives) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({**TWO, "experiment.metric": "eval_loss"}, r"has both `metrics` .* and `metric`.*remove `metric`"),
        (
            {"experiment.metrics": [{"name": "eval_loss"}, {"name": "eval_loss"}]},
            r"lists \['eval_loss'\] more than once",
        ),
        ({**TWO, "experiment.early_stopping_metric": "eval_accuracy"}, r"is not one of metrics \['eval_loss'"),
        ({"experiment.metrics": [{"name": "eval_loss"}, {"name": "exact_match"}]}, r"is required for metric"),
        ({"experiment.early_stopping_metric": "train_loss"}, r"differs from metric 'eval_loss'"),
    ],
)
def test_bad_objectives_are_refused_with_the_fix(make_block, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_block(make_block(changes))


def test_preflight_checks_every_objective_and_the_early_stopping_metric(make_block):
    block = load_block(
        make_block(
            {
                "experiment.metrics": [{"name": "eval_loss"}, {"name": "eval_acuracy", "direction": "maximize"}],
                "experiment.early_stopping_metric": "eval_loss",
            }
        )
    )
    found = {f.key: f for f in run_preflight(block, check_lf=False) if f.severity == "error"}
    assert "experiment.metrics[1].name" in found and "eval_accuracy" in found["experiment.metrics[1].name"].fix
    block = load_block(make_block({**TWO, "experiment.early_stopping_metric": "gpu_hours"}))
    (es,) = [f for f in run_preflight(block, check_lf=False) if f.key == "experiment.early_stopping_metric"]
    assert es.severity == "error" and "not written at the evals" in es.message and "eval_loss" in es.fix


def test_objectives_of_a_study_cannot_change():
    from tuner.config.experiment import Objective

    two = [Objective("eval_loss", "minimize"), Objective("gpu_hours", "minimize")]
    recorded = {"objectives": [o.to_dict() for o in two]}
    check_same_objectives(recorded, two, study="s")
    with pytest.raises(ConfigError, match=r"experiment\.metrics: study 's' is to minimize eval_loss, minimize gpu"):
        check_same_objectives(recorded, two[:1], study="s")
    with pytest.raises(ConfigError, match=r"is to minimize eval_loss, but the block asks to minimize eval_loss, mini"):
        check_same_objectives({"metric": "eval_loss", "direction": "minimize"}, two, study="s")


# -- the Pareto front and the pick rule -----------------------------------------------------------


def _t(number, values, state="COMPLETE"):
    from types import SimpleNamespace

    return SimpleNamespace(number=number, values=values, state=SimpleNamespace(name=state), params={})


def test_front_keeps_the_trade_offs_no_trial_beats():
    directions = ["minimize", "maximize"]  # loss down, accuracy up
    assert dominates([1.0, 0.9], [2.0, 0.5], directions) and not dominates([1.0, 0.5], [1.0, 0.5], directions)
    trials = [
        _t(0, [1.0, 0.5]),
        _t(1, [2.0, 0.9]),
        _t(2, [2.5, 0.4]),  # worse than #0 on both
        _t(3, [1.0, 0.5]),  # a tie with #0: both stay
        _t(4, None, "PRUNED"),
        _t(5, [0.5, float("nan")]),  # not a finished value
    ]
    assert [t.number for t in pareto_front(trials, directions)] == [0, 1, 3]


def test_pick_rule_best_metric_under_a_cap():
    names, directions = ["eval_accuracy", "gpu_hours"], ["maximize", "minimize"]
    trials = [_t(0, [0.90, 2.0]), _t(1, [0.80, 0.4]), _t(2, [0.85, 0.6]), _t(3, [0.70, 0.1])]
    cap = [Condition.parse("gpu_hours <= 0.5", names)]
    assert pick_by_rule(trials, names, directions, "eval_accuracy", cap).number == 1
    assert pick_by_rule(trials, names, directions, "eval_accuracy", []).number == 0
    assert pick_by_rule(trials, names, directions, "gpu_hours", []).number == 3
    with pytest.raises(ConfigError, match=r"--where: no COMPLETE trial meets gpu_hours<0.01"):
        pick_by_rule(trials, names, directions, "eval_accuracy", [Condition.parse("gpu_hours<0.01", names)])
    with pytest.raises(ConfigError, match=r"--where: is not a condition.*got 'gpu_hours = 1'"):
        Condition.parse("gpu_hours = 1", names)
    with pytest.raises(ConfigError, match=r"--best: is not one of the study's objectives"):
        pick_by_rule(trials, names, directions, "eval_loss", [])


# -- the study and the session --------------------------------------------------------------------


@pytest.fixture()
def two_objective_session(make_block, tmp_path):
    block = load_block(make_block({**TWO, "experiment.early_stopping_metric": "eval_loss"}))
    store = StudyStore.open(f"sqlite:///{tmp_path / 'tuner.db'}", "mo", direction=["minimize", "minimize"])
    store.set_metric_names(["eval_loss", "gpu_hours"])
    rungs = RungRule((100, 300), 3, minimize=True)
    session = StudySession(
        store, block, build_space(block), Ledger(Budget("trials", 10)), tmp_path / "trials", rungs=rungs, clock=Clock()
    )
    return session


def test_a_trial_of_two_objectives_records_both_values_and_the_front(two_objective_session):
    session = two_objective_session
    for values in ([2.0, 0.5], [3.0, 0.1], [3.5, 0.6]):
        ticket = session.next_trial()
        session.on_eval(ticket.number, values[0] + 1, samples=50)  # no Optuna intermediate values here
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": values, "wall_s": 1.0})
    trials = session.store.trials()
    assert [t.values for t in trials] == [[2.0, 0.5], [3.0, 0.1], [3.5, 0.6]]
    assert all(t.state.name == "COMPLETE" and not t.intermediate_values for t in trials)
    assert session.store.best() is None and [t.number for t in session.store.pareto_front()] == [0, 1]
    assert session.store.multi_objective and session.store.metric_names() == ["eval_loss", "gpu_hours"]


def test_early_stopping_on_the_named_metric_follows_ashas_rule(two_objective_session):
    session = two_objective_session
    tickets = [session.next_trial() for _ in range(4)]
    for ticket, value in zip(tickets, (1.0, 2.0, 3.0), strict=False):
        session.on_eval(ticket.number, value, samples=50)  # before the first rung: never compared
        assert not session.should_prune(ticket.number)
        session.on_eval(ticket.number, value, samples=104)  # the first eval past rung 0 (100 samples)
    # Decided in turn, as Optuna's rule does: fewer than 3 values at the rung, only the best goes on.
    decisions = [session.should_prune(t.number) for t in tickets[:3]]
    assert decisions == [False, True, True]
    attrs = {t.number: t.user_attrs for t in session.store.trials()}
    assert rung_values(attrs[2]) == {0: 3.0} and rung_values(attrs[0]) == {0: 1.0}
    assert not session.should_prune(tickets[3].number)  # no new eval: nothing to decide


def test_a_trial_stopped_early_counts_the_fraction_it_ran(two_objective_session):
    """Optuna keeps no intermediate values in such a study: the progress is a trial attribute."""
    session = two_objective_session
    ticket = session.next_trial()
    session.on_eval(ticket.number, 3.0, samples=100, planned=400)
    session.on_complete(ticket.number, None)  # stopped from outside (scheduler): no result.json
    (trial,) = session.store.trials()
    assert trial.state.name == "PRUNED" and session.store.trials_used() == pytest.approx(0.25)


def test_ashas_rule_matches_optunas():
    assert promotable(1.0, [1.0], 3, minimize=True)  # alone: the best goes on
    assert promotable(1.0, [1.0, 2.0, 3.0], 3, minimize=True) and not promotable(2.0, [1.0, 2.0, 3.0], 3, True)
    assert promotable(3.0, [1.0, 2.0, 3.0], 3, minimize=False)
    assert promotable(2.0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, minimize=True)  # top 2 of 6


def test_free_weights_keeps_the_whole_front(two_objective_session, tmp_path):
    session = two_objective_session
    for values in ([2.0, 0.5], [3.0, 0.1], [3.5, 0.6]):
        ticket = session.next_trial()
        (ticket.paths.output_dir / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (ticket.paths.output_dir / "model.safetensors").write_bytes(b"w" * 10)
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": values, "wall_s": 1.0})
    kept = [(tmp_path / "trials" / "mo" / f"{n:04d}" / "output" / "model.safetensors").exists() for n in range(3)]
    assert kept == [True, True, False]


def test_scheduler_is_off_unless_a_metric_is_named_for_it(make_block):
    two = load_block(make_block(TWO)).experiment
    assert scheduler_for(two, "asha", explicit=None) == "none"
    with pytest.raises(ConfigError, match=r"--scheduler: cannot stop trials early .*early_stopping_metric: eval_loss"):
        scheduler_for(two, "asha", explicit="asha")
    named = load_block(make_block({**TWO, "experiment.early_stopping_metric": "eval_loss"})).experiment
    assert scheduler_for(named, "asha", explicit="asha") == "asha"
    settings = SchedulerSettings.for_study("asha", 900)
    rule = settings.rung_rule(named)
    assert rule is not None and rule.points == settings.progress_points() == (100, 300) and rule.minimize
    assert settings.rung_rule(two) is None and settings.rung_rule(load_block(make_block()).experiment) is None


def test_samplers_that_handle_several_objectives(make_block):
    space = build_space(load_block(make_block()))
    assert type(make_sampler("nsga2", 0, space, objectives=2)).__name__ == "NSGAIISampler"
    make_sampler("auto", 0, space, objectives=2)
    with pytest.raises(ConfigError, match=r"--sampler: cannot search a study of 2 objectives"):
        make_sampler("cmaes", 0, space, objectives=2)


# -- outputs: status, promote, report -------------------------------------------------------------


def _finished_study(tmp_path, block_path):
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    store = StudyStore.open(url, "mo", direction=["maximize", "minimize"])
    store.set_metric_names(["eval_accuracy", "gpu_hours"])
    store.set_attrs(
        {
            "block_file": str(block_path),
            "block": load_block(block_path).public_dict(),
            "space": {"params": {"learning_rate": {"target": "training"}}},
            "objectives": [{"name": "eval_accuracy", "direction": "maximize"}, {"name": "gpu_hours"}],
        }
    )
    for lr, values in ((1e-4, [0.90, 2.0]), (2e-4, [0.80, 0.4]), (3e-4, [0.70, 0.9])):
        store.enqueue({"learning_rate": lr}, {})
        number, _ = store.ask(LR)
        attrs = {"global_batch_size": 8, "gpus": 0, "processes": 1, "trial_dir": str(tmp_path / f"t{number}")}
        store.tell(number, "COMPLETE", values, attrs=attrs)
    return store, url


def test_status_shows_the_pareto_front(make_block, tmp_path):
    from tuner.cli.study_printing import print_studies, print_study

    _, url = _finished_study(tmp_path, make_block())
    console = Console(record=True, width=200)
    print_study(console, url, "mo")
    print_studies(console, url)
    text = console.export_text()
    assert "Pareto front (maximize eval_accuracy, minimize gpu_hours): 2 trial(s)" in text
    assert "eval_accuracy" in text and "gpu_hours" in text and "Pareto front of 2" in text
    assert 'tune promote mo --trial N, or --best eval_accuracy --where "gpu_hours<=X"' in text


def test_promote_refuses_an_ambiguous_pick_and_follows_a_rule(make_block, tmp_path):
    from tuner.outputs.promote import promote

    store, _ = _finished_study(tmp_path, make_block())
    with pytest.raises(ConfigError, match=r"(?s)no single best trial; its Pareto front .*#0  eval_accuracy=0.9 .*#1 "):
        promote(store)
    done = promote(store, best="eval_accuracy", where=["gpu_hours<=0.5"])
    assert done.trial == 1 and done.values == {"eval_accuracy": 0.8, "gpu_hours": 0.4}
    provenance = load_block(done.target).provenance
    assert provenance["objectives"] == {"eval_accuracy": 0.8, "gpu_hours": 0.4}
    assert promote(store, trial=2, to=tmp_path / "t2.yaml").trial == 2  # off the front, but named
    with pytest.raises(ConfigError, match=r"--trial: names a trial and a rule"):
        promote(store, trial=2, best="gpu_hours")


def test_report_draws_the_front(make_block, tmp_path):
    from tuner.outputs.report import write_report

    store, _ = _finished_study(tmp_path, make_block())
    report = write_report(store, tmp_path / "report")
    assert (tmp_path / "report" / "pareto.png") in report.pngs
    page = report.html.read_text()
    assert "Pareto front (eval_accuracy, gpu_hours): #0 0.9, 2; #1 0.8, 0.4" in page
    assert "<th>eval_accuracy</th><th>gpu_hours</th>" in page


def test_dashboard_serves_the_front(make_block, tmp_path):
    """optuna-dashboard (read-only, as `tune dashboard` serves it) shows both objectives and the front."""
    import json
    import threading
    import urllib.request

    from tuner.outputs.dashboard import make_dashboard

    _, url = _finished_study(tmp_path, make_block())
    server = make_dashboard(url, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/api/studies"
        with urllib.request.urlopen(base, timeout=30) as response:
            (study,) = json.load(response)["study_summaries"]
        with urllib.request.urlopen(f"{base}/{study['study_id']}", timeout=30) as response:
            detail = json.load(response)
    finally:
        server.shutdown()
        server.server_close()
    assert detail["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == ["eval_accuracy", "gpu_hours"]  # its axes are named
    assert [t["number"] for t in detail["best_trials"]] == [0, 1]


@pytest.mark.parametrize("name", ["auto", "tpe", "nsga2"])
def test_multi_objective_samplers_propose_past_their_startup(tmp_path, name):
    """GP (auto on a numeric space), TPE and NSGA-II model a two-objective study once past random."""
    from tuner.config.space import Param, SearchSpace

    space = SearchSpace(params={"learning_rate": Param("learning_rate", "float", "training", 1e-5, 1e-3, log=True)})
    store = StudyStore.open(
        f"sqlite:///{tmp_path / 't.db'}",
        "mo",
        direction=["minimize", "minimize"],
        sampler=make_sampler(name, 0, space, 3, 2),
    )
    for _ in range(6):
        number, params = store.ask(space.distributions())
        lr = params["learning_rate"]
        store.tell(number, "COMPLETE", [abs(lr - 3e-4) * 1e4, lr * 1e3])
    assert len(store.pareto_front()) >= 1 and all(t.state.name == "COMPLETE" for t in store.trials())
