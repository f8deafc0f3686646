from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tuner.config import deepspeed_configs, yaml_io
from tuner.config._lf_args import parse_with_llamafactory
from tuner.config.block import load_block
from tuner.trial.prepare import TrialRequest, plan, prepare
from tuner.trial.workspace import trial_paths

GOLDEN = Path(__file__).parent / "golden"
PARAMS = {
    "learning_rate": 1.0e-4,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "num_train_epochs": 2,
    "max_instances": 120,
}


def _render(make_block, tmp_path, changes=None, params=PARAMS, nproc=1):
    block = load_block(make_block(changes))
    paths = trial_paths(tmp_path / "trials", "study", 3)
    return block, paths, plan(TrialRequest(block, params, paths, nproc=nproc, run_name="study-0003"))


def _normalize(text: str, tmp_path: Path, demo) -> str:
    return text.replace(str(demo.root), "<DEMO>").replace(str(tmp_path), "<TMP>")


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rendered output changed; UPDATE_GOLDEN=1 rewrites {path}"


def test_render_matches_golden_file(make_block, tmp_path, demo):
    _, _, (data, rendered) = _render(make_block, tmp_path)
    text = _normalize(rendered.yaml_text, tmp_path, demo)
    text = text.replace(data.key, "<KEY>")
    _golden("render_demo.yaml", text)
    _golden("ds_z3_config.json", json.dumps(rendered.ds_config, indent=2, sort_keys=True) + "\n")


def test_render_fills_params_owns_paths_and_keeps_lf_defaults(make_block, tmp_path):
    _, paths, (data, rendered) = _render(make_block, tmp_path)
    args = rendered.args
    assert args["learning_rate"] == 1e-4 and args["per_device_train_batch_size"] == 4
    assert args["num_train_epochs"] == 2 and "max_instances" not in args
    assert data.n_train == 120
    assert args["output_dir"] == str(paths.output_dir) and Path(args["output_dir"]).is_absolute()
    assert args["deepspeed"] == str(paths.ds_config)
    assert args["dataset"] == data.train_name and args["eval_dataset"] == data.eval_name
    assert args["report_to"] == "none" and args["run_name"] == "study-0003"
    # 120 samples / (4 x 1 process) = 30 batches -> 15 optimizer steps per epoch -> 30 steps
    # outside a study: evals at the trial's own quarters (the end by LLaMA-Factory's do_eval)
    assert rendered.total_steps == 30 and rendered.eval_at == (8, 15, 23)
    assert args["eval_strategy"] == "no" and args["do_eval"] is True and "eval_steps" not in args
    assert rendered.global_batch_size == 8
    for untouched in ("max_grad_norm", "weight_decay", "optim"):  # not written: LLaMA-Factory decides
        assert untouched not in args


def test_each_trial_gets_its_own_output_dir(make_block, tmp_path):
    block = load_block(make_block())
    outputs = {plan(TrialRequest(block, {}, trial_paths(tmp_path, "s", n)))[1].args["output_dir"] for n in range(3)}
    assert len(outputs) == 3


def test_wandb_modes_map_to_report_to(make_block, tmp_path):
    for mode, expected in (("disabled", "none"), ("offline", "wandb"), ("online", "wandb")):
        _, _, (_, rendered) = _render(make_block, tmp_path, {"experiment.wandb_mode": mode})
        assert rendered.args["report_to"] == expected


def test_no_secret_in_rendered_files(make_block, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNER_TEST_KEY", "wandb-secret-0123456789")
    block = load_block(
        make_block({"credentials.wandb_api_key": "${TUNER_TEST_KEY}", "experiment.wandb_mode": "online"})
    )
    paths = trial_paths(tmp_path / "trials", "s", 0)
    prepare(TrialRequest(block, {}, paths))
    for path in paths.root.rglob("*"):
        if path.is_file():
            assert "wandb-secret-0123456789" not in path.read_text()


@pytest.mark.parametrize(
    ("changes", "params", "nproc"),
    [
        (None, PARAMS, 1),
        (None, {}, 2),
        ({"experiment.wandb_mode": "offline"}, {"learning_rate": 1e-5}, 1),
        ({"runtime_info.input.training.deepspeed": "ds_z2_config.json"}, {"num_train_epochs": 1}, 1),
        ({"runtime_info.input.training.deepspeed": None, "runtime_info.input.training.save_steps": 50}, {}, 1),
        (
            {"runtime_info.input.training.template": "qwen3", "runtime_info.input.training.neftune_noise_alpha": 5.0},
            {"warmup_ratio": 0.05},
            1,
        ),
    ],
    ids=["demo-params", "two-procs", "wandb-offline", "zero2", "no-deepspeed-save-steps", "passthrough"],
)
def test_every_rendered_yaml_passes_llamafactory_parser(make_block, tmp_path, changes, params, nproc):
    _, paths, (_, rendered) = _render(make_block, tmp_path, changes, params, nproc)
    paths.root.mkdir(parents=True)
    if rendered.ds_config is not None:  # the parser reads the DeepSpeed file
        paths.ds_config.write_text(json.dumps(rendered.ds_config))
    args = yaml_io.loads(rendered.yaml_text)  # exactly what the trial would read
    _, data_args, training_args, finetuning_args, _ = parse_with_llamafactory(args)
    assert training_args.learning_rate == pytest.approx(args["learning_rate"])
    assert training_args.output_dir == str(paths.output_dir)
    assert data_args.dataset == [args["dataset"]] and finetuning_args.stage == "sft"


def test_llamafactory_parser_rejects_unknown_key():
    with pytest.raises(ValueError, match="learning_rte"):
        parse_with_llamafactory({"model_name_or_path": "x", "learning_rte": 1.0, "output_dir": "/tmp/x"})


def test_stock_deepspeed_name_resolves_and_a_real_file_wins(tmp_path):
    assert deepspeed_configs.zero_stage(deepspeed_configs.resolve("ds_z3_config.json", "b.yaml")) == 3
    own = tmp_path / "ds_z3_config.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert deepspeed_configs.zero_stage(deepspeed_configs.resolve(str(own), "b.yaml")) == 2


def test_tokenized_copy_is_shared_only_between_identical_tokenizations(make_block, tmp_path):
    from tuner.trial.prepare import tokenized_cache

    base = load_block(make_block())
    paths = trial_paths(tmp_path / "trials", "s", 0)
    _, _, (data, rendered) = _render(make_block, tmp_path)
    same = tokenized_cache(base, data, paths)
    assert same == tokenized_cache(base, data, trial_paths(tmp_path / "trials", "s", 7))  # any trial of the study
    longer = load_block(make_block({"runtime_info.input.training.cutoff_len": 512}, name="b2.yaml"))
    assert tokenized_cache(longer, data, paths) != same
    # Not in the cache yet: the trial tokenizes into its own folder, never into the shared path.
    assert rendered.args["tokenized_path"].endswith("/study/0003/tokenized")


def test_a_trial_in_a_study_evaluates_at_the_studys_progress_points(make_block, tmp_path):
    """Progress points are samples seen; the trial evaluates at the first optimizer step that reaches
    each one it will reach before its end (global batch 8 here: 30 steps, 240 samples)."""
    block = load_block(make_block())
    request = TrialRequest(block, PARAMS, trial_paths(tmp_path, "s", 0), progress_points=(26, 80, 240, 720))
    rendered = plan(request)[1]
    assert rendered.global_batch_size == 8 and rendered.total_steps == 30
    assert rendered.eval_at == (4, 10)  # 26 -> step 4 (32 samples), 80 -> 10; 240 is its end; 720 never


def test_eval_steps_for_trials_of_mixed_lengths_land_on_the_same_samples():
    """The rung arithmetic for trials of different lengths and batch sizes: each evaluates within one
    global batch past every rung it reaches, and never at a rung it does not reach."""
    from tuner.trial.render import eval_steps

    rungs = (100, 300)  # a study whose longest trial sees 900 samples
    for gbs, total, expected in (
        (8, 113, (13, 38)),
        (32, 29, (4, 10)),
        (4, 50, (25,)),
        (
            64,
            2,
            (),
        ),
    ):
        steps = eval_steps(rungs, gbs, total)
        assert steps == expected, (gbs, total)
        for step, rung in zip(steps, rungs, strict=False):
            assert rung <= step * gbs < rung + gbs  # identical progress, up to one batch
    assert eval_steps((), 1, 30) == (8, 15, 23)  # no study: the trial's own quarters
    assert eval_steps((10,), 1, 10) == ()  # a point at the last step: the end's own eval covers it
