from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.config.block import load_block
from tuner.config.space import build_space
from tuner.config.space_file import DEFAULT_SPACE, load_space_file


def test_default_space_file_matches_the_design():
    space = load_space_file(DEFAULT_SPACE)
    lr = space.params["learning_rate"]
    assert (lr.type, lr.low, lr.high, lr.log) == ("float", 1e-5, 1e-3, True)
    assert space.params["num_train_epochs"].type == "int"
    assert space.params["per_device_train_batch_size"].type == "categorical"
    assert space.params["gradient_accumulation_steps"].type == "categorical"
    assert (space.params["max_instances"].type, space.params["max_instances"].log) == ("int", True)
    assert space.params["max_instances"].target == "conversion"


MIXED_TUNABLES = {
    "learning_rate": {},
    "num_train_epochs": {"low": 1, "high": 3},
    "per_device_train_batch_size": {"choices": [4, 8]},
    "max_instances": {"low": 100, "high": 300},
}


def test_demo_space_narrows_to_optuna_distributions(make_block):
    d = build_space(load_block(make_block())).distributions()  # the demo's: all numeric
    assert d == {
        "learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
        "num_train_epochs": IntDistribution(1, 5),
        "warmup_ratio": FloatDistribution(0.0, 0.2),
    }
    space = build_space(load_block(make_block({"evolving.tunable_params": MIXED_TUNABLES})))
    d = space.distributions()
    assert d["num_train_epochs"] == IntDistribution(1, 3)
    assert d["per_device_train_batch_size"] == CategoricalDistribution([4, 8])
    assert d["max_instances"] == IntDistribution(100, 300, log=True)  # log scale from the space file
    assert space.params["max_instances"].target == "conversion"


def test_list_of_names_takes_space_file_ranges(make_block):
    space = build_space(load_block(make_block({"evolving.tunable_params": ["learning_rate", "max_instances"]})))
    assert space.distributions()["max_instances"] == IntDistribution(100, 100000, log=True)


def test_space_serializes_to_json_for_the_study(make_block):
    import json

    space = build_space(load_block(make_block({"evolving.tunable_params": MIXED_TUNABLES})))
    data = json.loads(json.dumps(space.to_dict()))
    assert data["params"]["learning_rate"]["log"] is True
    assert data["params"]["per_device_train_batch_size"]["choices"] == [4, 8]


@pytest.mark.parametrize(
    ("params", "gpus", "violates"),
    [
        ({"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}, 1, False),
        ({"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}, 8, True),
        ({"per_device_train_batch_size": 1}, 1, True),
    ],
)
def test_global_batch_constraint(make_block, params, gpus, violates):
    block = load_block(make_block({"evolving.global_batch_size": [4, 64]}))
    space = build_space(block)
    assert (
        space.global_batch_size({"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}, block, 8) == 128
    )
    assert (space.violation(params, block, gpus) is not None) == violates
