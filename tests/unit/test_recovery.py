"""Resume bookkeeping without training: orphans, requeue once, checkpoints, retries, disk, secrets."""

from __future__ import annotations

import json
from types import SimpleNamespace

from tuner.config.block import load_block
from tuner.config.space import build_space
from tuner.study.budget import Budget, Ledger
from tuner.study.disk import keepers, prune_weights
from tuner.study.recovery import latest_checkpoint, recover
from tuner.study.session import StudySession
from tuner.study.shape import RunShape
from tuner.study.store import StudyStore
from tuner.trial.classify import classify
from tuner.trial.scrub import scrub_secrets


def _session(make_block, tmp_path, changes=None, **kw):
    block = load_block(make_block(changes))
    store = StudyStore.open(f"sqlite:///{tmp_path / 'tuner.db'}", "s")
    return StudySession(store, block, build_space(block), Ledger(Budget("trials", 10)), tmp_path / "trials", **kw)


def _checkpoint(output, step):
    ckpt = output / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return ckpt


def test_orphan_becomes_interrupted_and_is_requeued_once_from_its_checkpoint(make_block, tmp_path):
    session = _session(make_block, tmp_path)
    ticket = session.next_trial()  # left RUNNING: its driver "died"
    _checkpoint(ticket.paths.output_dir, 5)
    newest = _checkpoint(ticket.paths.output_dir, 10)
    (ticket.paths.output_dir / "checkpoint-15").mkdir()  # incomplete: no trainer_state.json
    assert latest_checkpoint(ticket.paths.output_dir) == newest

    recovered = recover(session.store, session.block)
    assert recovered.interrupted == [ticket.number] and recovered.requeued == {ticket.number: str(newest)}
    trials = session.store.trials()
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["exit_class"] == "interrupted"
    retry = trials[-1]
    assert retry.state.name == "WAITING" and retry.system_attrs["fixed_params"] == ticket.params
    assert retry.user_attrs == {"retry_of": ticket.number, "resume_from": str(newest)}
    assert recover(session.store, session.block).requeued == {}  # at most once

    fresh = _session(make_block, tmp_path)  # the next driver picks the retry up first
    again = fresh.next_trial()
    assert again.params == ticket.params and again.resume_from == str(newest)


def test_model_only_checkpoints_restart_from_scratch(make_block, tmp_path):
    session = _session(make_block, tmp_path, {"runtime_info.input.training.save_only_model": True})
    ticket = session.next_trial()
    _checkpoint(ticket.paths.output_dir, 10)
    assert recover(session.store, session.block).requeued == {ticket.number: None}


def test_interrupted_trials_do_not_use_up_a_trial_budget(make_block, tmp_path):
    session = _session(make_block, tmp_path)
    ticket = session.next_trial()
    session.interrupted = True
    session.finish_running(interrupted=True)
    trial = session.store.trials()[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["exit_class"] == "interrupted"
    assert session.ledger.trials_used == 0 and ticket.number == 0


def test_crash_is_retried_up_to_n_times_but_never_an_oom(make_block, tmp_path):
    session = _session(make_block, tmp_path, shape=RunShape(retries=1))
    first = session.next_trial()
    session.on_complete(first.number, {"final": True, "exit_class": "crashed", "reason": "x"})
    retry = session.next_trial()
    assert retry.params == first.params
    session.on_complete(retry.number, {"final": True, "exit_class": "crashed", "reason": "x"})
    attrs = {t.number: t.user_attrs for t in session.store.trials()}
    assert attrs[retry.number]["retry_of"] == first.number and attrs[retry.number]["attempt"] == 1
    assert not any(t.state.name == "WAITING" for t in session.store.trials())  # 1 retry only
    oom = session.next_trial()
    session.on_complete(oom.number, {"final": True, "exit_class": "oom", "reason": "x"})
    assert not any(t.state.name == "WAITING" for t in session.store.trials())


def _t(number, state, value=None, **attrs):
    values = [value] if value is not None else None
    return SimpleNamespace(
        number=number, state=SimpleNamespace(name=state), value=value, values=values, user_attrs=attrs
    )


def test_keepers_best_k_pinned_and_pending_retries():
    trials = [
        _t(0, "COMPLETE", 2.0),
        _t(1, "COMPLETE", 1.0),
        _t(2, "COMPLETE", 3.0, pinned=True),
        _t(3, "FAIL", exit_class="interrupted"),
        _t(4, "WAITING", retry_of=3),
        _t(5, "PRUNED", 9.0),
    ]
    assert keepers(trials, keep_best=1, directions=["minimize"]) == {1, 2, 3}
    trials[4] = _t(4, "COMPLETE", 5.0, retry_of=3)
    assert keepers(trials, keep_best=2, directions=["minimize"]) == {1, 0, 2}


def test_prune_weights_deletes_only_weights_of_losers(tmp_path):
    outputs = {}
    for n in (0, 1):
        out = tmp_path / str(n) / "output"
        _checkpoint(out, 4)
        (out / "model.safetensors").write_bytes(b"w" * 1000)
        (out / "eval_results.json").write_text("{}")
        outputs[n] = out
    trials = [_t(0, "COMPLETE", 1.0, output_dir=str(outputs[0])), _t(1, "COMPLETE", 2.0, output_dir=str(outputs[1]))]
    freed = prune_weights(trials, keep_best=1, directions=["minimize"])
    assert set(freed) == {1} and freed[1] >= 1000
    assert (outputs[0] / "model.safetensors").exists() and (outputs[0] / "checkpoint-4").exists()
    assert not (outputs[1] / "model.safetensors").exists() and not (outputs[1] / "checkpoint-4").exists()
    assert (outputs[1] / "eval_results.json").exists()  # metrics stay


def test_prune_weights_remembers_weightless_trials_and_frees_a_trial_that_drops_out_of_the_best(tmp_path):
    outputs = {}
    for n in (0, 1, 2):
        outputs[n] = tmp_path / str(n) / "output"
        _checkpoint(outputs[n], 4)
    trials = [_t(0, "COMPLETE", 2.0, output_dir=str(outputs[0])), _t(1, "FAIL", None, output_dir=str(outputs[1]))]
    weightless: set[int] = set()
    assert set(prune_weights(trials, 1, ["minimize"], weightless)) == {1} and weightless == {1}
    _checkpoint(outputs[1], 8)  # never happens to a finished trial; proves the folder is not scanned again
    trials.append(_t(2, "COMPLETE", 1.0, output_dir=str(outputs[2])))  # a new best: trial 0 drops out
    assert set(prune_weights(trials, 1, ["minimize"], weightless)) == {0} and weightless == {0, 1}
    assert (outputs[1] / "checkpoint-8").exists() and (outputs[2] / "checkpoint-4").exists()


def test_scrub_secrets_keeps_binary_layout(tmp_path):
    (tmp_path / "wandb").mkdir()
    log = tmp_path / "wandb" / "debug.log"
    log.write_text("api_key=sk-abcdef123456 ok")
    blob = tmp_path / "run.wandb"
    blob.write_bytes(b"\x00\x01sk-abcdef123456\x02")
    assert sorted(scrub_secrets(tmp_path, ["sk-abcdef123456"])) == sorted([log, blob])
    assert log.read_text() == "api_key=*************** ok"
    assert blob.read_bytes() == b"\x00\x01" + b"*" * 15 + b"\x02"


def test_disk_full_is_its_own_class():
    assert classify(1, None, None, ["OSError: [Errno 28] No space left on device"], [])[0] == "disk_full"
