"""The per-GPU memory estimate (issue 15): DeepSpeed's own numbers, published figures, the gate in a study.

Figures from outside tuner are cited where they are used, with the estimator's error against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuner.config.block import load_block
from tuner.config.machine import gpu_memory_bytes
from tuner.config.memory import (
    ESTIMATE_VERSION,
    GIB,
    ModelShape,
    Run,
    activation_bytes,
    estimate,
    model_shape,
    read_model_shape,
    zero3_model_states,
)
from tuner.config.memory_check import Margin, MemoryCheck, parse_memory, refit, refit_from_trials, run_for, worst_corner
from tuner.config.space import build_space
from tuner.errors import ConfigError
from tuner.study.budget import Budget, Ledger
from tuner.study.session import StudySession
from tuner.study.shape import RunShape
from tuner.study.store import StudyStore

DATA = Path(__file__).parent.parent / "data"
QWEN3_8B = DATA / "qwen3-8b"  # the public Qwen/Qwen3-8B config.json
LLAMA2_7B = DATA / "llama-2-7b"  # the public meta-llama/Llama-2-7b-hf config.json


# -- the model's shape from config.json ---------------------------------------------------------
def test_parameter_counts_match_the_published_ones():
    # Llama-2-7b-hf: 6,738,415,616 parameters (the count transformers prints for the checkpoint).
    assert read_model_shape(LLAMA2_7B).total_params == 6_738_415_616
    # Qwen3-8B model card: "Number of Parameters: 8.2B; Number of Parameters (Non-Embedding): 6.95B".
    qwen = read_model_shape(QWEN3_8B)
    assert qwen.total_params == 8_190_735_360  # 8.19B: -0.1% against the card's rounded 8.2B
    non_embedding = qwen.total_params - 2 * qwen.vocab * qwen.hidden
    assert abs(non_embedding / 6.95e9 - 1) < 0.001  # 6.946B: -0.06%
    assert qwen.largest_layer_params == 151936 * 4096  # the embedding (and lm_head)


def test_config_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        read_model_shape(tmp_path)
    with pytest.raises(ConfigError, match="lacks"):
        model_shape({"hidden_size": 8})
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        model_shape({**json.loads((QWEN3_8B / "config.json").read_text()), "num_experts": 128})


# -- model states: DeepSpeed's own estimator ----------------------------------------------------
@pytest.mark.parametrize(("gpus", "nodes"), [(1, 1), (8, 1), (8, 2), (4, 4)])
@pytest.mark.parametrize(("offload_optimizer", "offload_param"), [(False, False), (True, False), (True, True)])
def test_model_states_equal_deepspeeds_estimator(gpus, nodes, offload_optimizer, offload_param):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    for shape in (read_model_shape(QWEN3_8B), read_model_shape(LLAMA2_7B)):
        _, ds_gpu, _ = estimate_zero3_model_states_mem_needs(
            shape.total_params,
            shape.largest_layer_params,
            num_gpus_per_node=gpus,
            num_nodes=nodes,
            cpu_offload=offload_optimizer,
            cpu_offload_params=offload_param,
        )
        ours = zero3_model_states(
            shape.total_params,
            shape.largest_layer_params,
            gpus,
            nodes,
            offload_optimizer=offload_optimizer,
            offload_param=offload_param,
        )
        assert ours == ds_gpu
        run = Run(1, 1024, gpus, nodes, offload_optimizer=offload_optimizer, offload_param=offload_param)
        assert estimate(shape, run).model_states == ds_gpu


def test_model_states_against_deepspeeds_published_figures():
    # DeepSpeed docs, "Memory Requirements" (deepspeed.readthedocs.io/en/latest/memory.html), also in
    # transformers' DeepSpeed guide: bigscience/T0_3B, "2783M total params, 65M largest layer
    # params", 1 node x 1 GPU, per GPU: 46.91GB without offload, 5.43GB with offload_optimizer=cpu,
    # 0.25GB with offload_param=cpu too (GB printed as 2**30). The printed counts are truncated to
    # millions, hence the error.
    total, largest = 2_783_000_000, 65_000_000
    for options, published in (({}, 46.91), ({"offload_optimizer": True}, 5.43)):
        ours = zero3_model_states(total, largest, **options) / GIB
        assert abs(ours / published - 1) < 0.003  # 46.87 (-0.09%), 5.43 (-0.05%)
    both = zero3_model_states(total, largest, offload_optimizer=True, offload_param=True) / GIB
    assert abs(both - 0.25) < 0.01  # 0.24 GiB: the 65M largest layer of the print is truncated


def test_model_states_against_llamafactorys_hardware_table():
    # LLaMA-Factory README, "Hardware Requirement" (estimated): Full (bf16 or fp16), 7B: 120GB, and
    # "18x GB" for x billion parameters, on one device. Llama-2-7b on 1 GPU: 113.6 GiB = 122.0 GB,
    # +1.6% against the table's 120GB; exactly 18 bytes per parameter plus DeepSpeed's largest layer.
    shape = read_model_shape(LLAMA2_7B)
    states = estimate(shape, Run(1, 1, 1)).model_states
    assert abs(states / 120e9 - 1) < 0.02
    assert states == 18 * shape.total_params + 4 * shape.largest_layer_params


# -- activations: the paper's structure --------------------------------------------------------
def test_activations_scale_as_the_paper_says():
    qwen = read_model_shape(QWEN3_8B)
    base = Run(1, 4096, 8, attention="fa2", fused_loss=True)

    def act(**changes):  # a training step's
        return activation_bytes(qwen, Run(**{**base.__dict__, **changes}))

    assert act(micro_batch=2) == 2 * act()  # linear in the micro-batch
    # Gradient checkpointing keeps 2sbh per layer instead of the whole layer (Korthikanti et al. 4.1).
    assert act(checkpointing=False) > 4 * act()
    # Eager attention keeps the s x s scores (the paper's 5as^2b term); FlashAttention does not.
    eager, flash = act(attention="eager", seq_len=8192), act(seq_len=8192)
    assert eager / flash > 1.5 * (act(attention="eager") / act())
    # Without the fused loss the fp32 logits (tokens x vocab) dominate a 151936-token vocabulary.
    assert act(fused_loss=False) > 2 * act()


# -- against peaks measured on one H200 (docs/benchmarks.md section 4) -----------------------
# bench/gpu_check.py's model: Qwen2.5-0.5B's shape as a Qwen3 (151936-token vocabulary, tied), bf16,
# SDPA, ZeRO-3 on one GPU, 1024 tokens per sample; torch.cuda.max_memory_allocated of its trials.
H200_MODEL = ModelShape(
    hidden=896, layers=24, intermediate=4864, heads=14, kv_heads=2, head_dim=64, vocab=151936, tied=True, qk_norm=True
)
H200_PEAKS = [  # training batch, evaluation batch, measured GiB, the phase that sets the peak
    (8, 20, 35.31, "evaluation"),  # bench/gpu_check.py: 1.53 x the estimate that counted training only
    (8, 8, 21.28, "training"),  # bench/gpu_memory_check.py, run after evaluation was counted
    (8, 32, 52.40, "evaluation"),
    (16, 4, 35.13, "training"),
]


@pytest.mark.parametrize(("train", "evaluation", "measured", "phase"), H200_PEAKS)
def test_the_estimate_against_peaks_measured_on_an_h200(train, evaluation, measured, phase):
    assert H200_MODEL.total_params == 494_008_192  # what gpu_check.py built
    e = estimate(H200_MODEL, Run(train, 1024, eval_batch=evaluation))
    assert e.phase.startswith(phase)
    error = e.allocated / (measured * GIB) - 1
    assert 0 <= error <= 0.10  # measured: +5.7 % to +8.6 %, on the safe side


def test_an_evaluation_batch_above_the_training_batch_is_named_in_the_estimate():
    e = estimate(H200_MODEL, Run(8, 1024, eval_batch=20))
    assert "activations 29.12 in evaluation at per_device_eval_batch_size 20" in e.describe()
    assert "evaluation" not in estimate(H200_MODEL, Run(8, 1024)).describe()  # evaluated at the training batch
    # predict_with_generate: no loss head in the evaluation (generation is not modelled)
    assert estimate(H200_MODEL, Run(8, 1024, eval_batch=20, eval_loss=False)).phase == "training"


# -- the block, the space, the margin -----------------------------------------------------------
@pytest.fixture()
def qwen_block(make_block):
    """A production-sized block: Qwen3-8B, 32k cutoff_len with yarn, 8 GPUs, ZeRO-3, batch 1 to 8."""

    def make(**changes):
        return load_block(
            make_block(
                {
                    "n_gpus_per_node": 8,
                    "runtime_info.input.training.model_name_or_path": str(QWEN3_8B),
                    "runtime_info.input.training.cutoff_len": 32768,
                    "runtime_info.input.training.rope_scaling": "yarn",
                    "runtime_info.input.training.bf16": True,
                    "runtime_info.input.training.flash_attn": "fa2",
                    "runtime_info.input.training.per_device_train_batch_size": 1,
                    "runtime_info.input.training.per_device_eval_batch_size": 1,  # 32k tokens of logits
                    "runtime_info.input.training.enable_liger_kernel": True,
                    "evolving.tunable_params": {
                        "learning_rate": {},
                        "per_device_train_batch_size": {"choices": [1, 2, 4, 8]},
                    },
                    **changes,
                }
            )
        )

    return make


def test_run_reads_the_block(qwen_block, demo):
    block = qwen_block()
    run = run_for(block, {"per_device_train_batch_size": 4}, 8)
    assert (run.micro_batch, run.seq_len, run.zero_stage, run.attention, run.act_bytes) == (4, 32768, 3, "fa2", 2)
    assert run.checkpointing and run.fused_loss and not run.offload_optimizer
    assert run.eval_batch == 1 and run_for(block, {"per_device_eval_batch_size": 2}, 8).eval_batch == 2
    assert run.eval_loss and not run_for(block, {"predict_with_generate": True}, 8).eval_loss
    off = run_for(
        qwen_block(
            **{
                "runtime_info.input.training.deepspeed": "ds_z3_offload_config.json",
                "runtime_info.input.training.disable_gradient_checkpointing": True,
                "runtime_info.input.training.flash_attn": "disabled",
            }
        ),
        {},
        8,
    )
    assert off.offload_optimizer and off.offload_param and not off.checkpointing and off.attention == "eager"
    assert worst_corner(build_space(block), block) == {"per_device_train_batch_size": 8}
    assert run_for(load_block(demo.block), {}, 1).act_bytes == 4  # the demo trains in fp32
    assert run_for(load_block(demo.block), {}, 1).eval_batch == 20  # and evaluates 20 at a time


def test_the_worst_corner_includes_a_tuned_evaluation_batch(qwen_block, tmp_path):
    space = tmp_path / "space.yaml"
    for line, worst in (("{type: categorical, choices: [1, 32]}", 32), ("{type: int, low: 1, high: 16}", 16)):
        space.write_text(f"params:\n  per_device_eval_batch_size: {line}\n")
        block = qwen_block(**{"evolving.tunable_params": ["per_device_eval_batch_size"]})
        assert worst_corner(build_space(block, space), block) == {"per_device_eval_batch_size": worst}


def test_parse_memory():
    assert parse_memory("80GiB") == parse_memory("80") == parse_memory("81920MiB") == 80 * GIB
    assert parse_memory("141GB") == 141 * 10**9
    with pytest.raises(ConfigError, match="positive size"):
        parse_memory("lots")


def test_margin_refit_from_pairs_and_ooms():
    assert refit([], []) == Margin(1.0, None)
    # A trial that measured 10% above its estimate scales every later estimate by 1.1; one below
    # (its batches were shorter than cutoff_len) never lowers it.
    assert refit([(10.0, 11.0), (10.0, 5.0)], []).factor == 1.1
    margin = refit([], [70 * GIB, 75 * GIB])  # ran out of memory at a predicted 70 GiB
    assert margin.usable(80 * GIB) == int(70 * GIB * 0.95) < int(80 * GIB * 0.9)
    attrs = [
        {"memory_estimate_gib": 40.0, "memory_peak_gib": 44.0, "exit_class": "ok"},
        {"memory_estimate_gib": 60.0, "memory_predicted_gib": 62.0, "exit_class": "oom"},
    ]
    assert refit_from_trials([{**a, "memory_estimate_version": ESTIMATE_VERSION} for a in attrs]) == Margin(
        1.1, int(62 * GIB)
    )
    # A resumed study's trials estimated by older formulas (training only: 1.53 x below an evaluation's
    # peak) would scale every new estimate: they are left out.
    assert refit_from_trials([*attrs, {"memory_estimate_gib": 23.1, "memory_peak_gib": 35.31}]) == Margin(1.0, None)


def test_gpu_memory_from_nvidia_smi(gpu_node, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_memory_bytes() is None  # no GPU visible: no limit
    gpu_node(8)
    assert gpu_memory_bytes() == 80 * GIB


# -- in a study: infeasible before launch ---------------------------------------------------------
def _session(block, tmp_path, shape):
    import optuna

    # Seeded: unseeded, the sampler draws only batch 1 or 2 in 6 trials about once in 64 runs.
    store = StudyStore.open(f"sqlite:///{tmp_path / 'tuner.db'}", "s", sampler=optuna.samplers.RandomSampler(seed=0))
    return StudySession(store, block, build_space(block), Ledger(Budget("trials", 6)), tmp_path / "t", shape=shape)


def test_infeasible_corner_is_pruned_before_any_process_starts(qwen_block, tmp_path, gpu_node):
    gpu_node(8)
    block = qwen_block()
    check = MemoryCheck(block, gpu_memory_bytes(), 8)
    fits = {bs: check.verdict({"per_device_train_batch_size": bs}).fits for bs in (1, 2, 4, 8)}
    # 68.8, 68.8 (the evaluation of 32k tokens' logits at batch 1 sets both), 96.8, 172.1 GiB of 72 usable
    assert fits == {1: True, 2: True, 4: False, 8: False}
    session = _session(block, tmp_path, RunShape(gpus_per_trial=8, gpu_memory_gib=gpu_memory_bytes() / GIB))
    started = []
    for _ in range(6):
        ticket = session.next_trial()
        if ticket is None:
            break
        started.append(ticket.params["per_device_train_batch_size"])
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.0})
    assert started and set(started) <= {1, 2}
    trials = session.store.trials()
    pruned = [t for t in trials if t.user_attrs.get("exit_class") == "infeasible"]
    assert pruned, "the sampler drew no batch of 4 or 8 in 6 trials (seeded: it does)"
    for t in pruned:
        assert t.state.name == "PRUNED" and t.params["per_device_train_batch_size"] in (4, 8)
        assert "predicted peak GPU memory" in t.user_attrs["reason"]
        assert t.user_attrs["memory_predicted_gib"] > t.user_attrs["memory_usable_gib"] == 72.0
        assert t.constraints == {"memory": 1.0}  # the sampler learns the region is infeasible
        assert not Path(tmp_path / "t" / "s" / f"{t.number:04d}").exists()  # no workspace: nothing started
    ran = [t for t in trials if t.user_attrs.get("exit_class") == "ok"]
    assert all(t.user_attrs["memory_estimate_gib"] > 0 for t in ran)


def test_without_the_fused_loss_even_batch_one_does_not_fit(qwen_block):
    # 32768 tokens x 151936 vocabulary x 12 bytes of fp32 logits and their gradients: 55.6 GiB.
    check = MemoryCheck(qwen_block(**{"runtime_info.input.training.enable_liger_kernel": False}), 80 * GIB, 8)
    assert not check.verdict({}).fits


def test_on_the_cpu_nothing_is_checked(qwen_block, tmp_path):
    session = _session(qwen_block(), tmp_path, RunShape(gpus_per_trial=0))
    for _ in range(4):
        ticket = session.next_trial()
        session.on_complete(ticket.number, {"final": True, "exit_class": "ok", "value": 1.0})
    assert not [t for t in session.store.trials() if t.user_attrs.get("exit_class") == "infeasible"]


def test_the_demos_configurations_all_fit(demo, gpu_node):
    gpu_node(1)
    block = load_block(demo.block)
    check = MemoryCheck(block, gpu_memory_bytes(), 1)
    assert "per_device_train_batch_size" not in build_space(block).params  # the demo fixes batch 1
    for bs in (1, 4, 8):  # the demo's batch, and the 8 the integration tests train with
        verdict = check.verdict({"per_device_train_batch_size": bs})
        assert verdict.fits and verdict.estimate.total < 3 * GIB


def test_tune_check_prints_the_estimate(make_block, gpu_node, monkeypatch):
    from typer.testing import CliRunner

    from tuner.cli import app
    from tuner.cli.options import out

    monkeypatch.setattr(out, "width", 250)  # one table row per line
    gpu_node(8)
    path = make_block(
        {
            "n_gpus_per_node": 8,
            "runtime_info.input.training.model_name_or_path": str(QWEN3_8B),
            "runtime_info.input.training.cutoff_len": 32768,
            "runtime_info.input.training.rope_scaling": "yarn",
            "runtime_info.input.training.bf16": True,
            "runtime_info.input.training.per_device_train_batch_size": 1,
            "runtime_info.input.training.per_device_eval_batch_size": 1,
            "runtime_info.input.training.enable_liger_kernel": True,
            "evolving.tunable_params": {"per_device_train_batch_size": {"choices": [1, 8]}},
        }
    )
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "Peak memory per GPU" in result.output and "80.0 GiB per GPU (nvidia-smi)" in result.output
    own = next(line for line in result.output.splitlines() if "block's values" in line)
    corner = next(line for line in result.output.splitlines() if "worst corner" in line)
    assert "1 x 32768" in own and "fits" in own and "does not fit" not in own and "(eval" not in own
    assert "8 x 32768 (eval 1)" in corner and "does not fit" in corner  # the block's evaluation batch stays 1
    given = CliRunner().invoke(app, ["check", "--config", str(path), "--gpu-memory", "141GB"])
    assert "131.32 GiB per GPU (--gpu-memory)" in given.output
    bad = CliRunner().invoke(app, ["check", "--config", str(path), "--gpu-memory", "much"])
    assert isinstance(bad.exception, ConfigError) and bad.exception.exit_code == 2  # main() prints it, exit 2
    assert "--gpu-memory: must be a positive size" in str(bad.exception)
