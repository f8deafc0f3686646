from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuner.config.block import Conversion
from tuner.config.thinking_templates import THINKING_TEMPLATES
from tuner.errors import DataError
from tuner.trial.dataset import prepare_dataset


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _conversion(source: Path, **kw) -> Conversion:
    return Conversion(source=source, data_name="t", eval_instances=kw.pop("eval_instances", 20), **kw)


def _write_source(path: Path, n: int, reasoning: bool = False) -> Path:
    with path.open("w") as f:
        for i in range(n):
            assistant = {"role": "assistant", "content": f"answer {i}"}
            if reasoning:
                assistant["reasoning_content"] = f"because {i}"
            f.write(json.dumps({"messages": [{"role": "user", "content": f"q {i}"}, assistant]}) + "\n")
    return path


def test_eval_split_is_held_out_before_the_cap_and_caps_nest(tmp_path):
    source = _write_source(tmp_path / "src.jsonl", 120)
    small = prepare_dataset(_conversion(source, max_instances=30), "qwen3_nothink", tmp_path / "cache")
    large = prepare_dataset(_conversion(source, max_instances=90), "qwen3_nothink", tmp_path / "cache")
    full = prepare_dataset(_conversion(source), "qwen3_nothink", tmp_path / "cache")
    assert (small.n_train, large.n_train, full.n_train, full.n_pool) == (30, 90, 100, 100)
    evals = [_rows(d.dataset_dir / "eval.jsonl") for d in (small, large, full)]
    assert evals[0] == evals[1] == evals[2] and len(evals[0]) == 20  # one eval set for every cap
    trains = [_rows(d.dataset_dir / "train.jsonl") for d in (small, large, full)]
    assert trains[0] == trains[1][:30] and trains[1] == trains[2][:90]  # a smaller cap is a subset
    assert not any(row in evals[0] for row in trains[2])  # eval never leaks into training


def test_dataset_info_registers_both_splits(tmp_path):
    source = _write_source(tmp_path / "src.jsonl", 50)
    data = prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    info = json.loads((data.dataset_dir / "dataset_info.json").read_text())
    assert set(info) == {data.train_name, data.eval_name}
    assert info[data.train_name]["formatting"] == "sharegpt"
    assert info[data.train_name]["tags"]["assistant_tag"] == "assistant"


def test_conversion_is_cached_by_content(tmp_path):
    source = _write_source(tmp_path / "src.jsonl", 50)
    first = prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    marker = first.dataset_dir / "train.jsonl"
    mtime = marker.stat().st_mtime_ns
    again = prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    assert again == first and marker.stat().st_mtime_ns == mtime  # reused, not rewritten
    _write_source(source, 51)  # new content -> new conversion
    changed = prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    assert changed.key != first.key and changed.n_train == 31


def test_reasoning_is_inlined_for_thinking_templates_only(tmp_path):
    source = _write_source(tmp_path / "src.jsonl", 40, reasoning=True)
    think = prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    plain = prepare_dataset(_conversion(source), "qwen3_nothink", tmp_path / "cache")
    answer = _rows(think.dataset_dir / "train.jsonl")[0]["messages"][-1]["content"]
    assert answer.startswith("<think>\nbecause ") and "\n</think>\n\nanswer " in answer
    assert think.with_reasoning == 20
    plain_answer = _rows(plain.dataset_dir / "train.jsonl")[0]["messages"][-1]["content"]
    assert plain_answer.startswith("answer ") and plain.with_reasoning == 0


@pytest.mark.parametrize(
    ("line", "key", "rule"),
    [
        ("not json", "<line>", "not valid JSON"),
        ('{"text": "x"}', "messages", "non-empty list"),
        ('{"messages": [{"role": "assistant", "content": "a"}]}', "messages[0].role", "at this position"),
        ('{"messages": [{"role": "user", "content": "q"}]}', "messages", "end with an assistant"),
        (
            '{"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}',
            "messages[0].content",
            "must be a string",
        ),
    ],
)
def test_malformed_trajectories_name_line_and_key(tmp_path, line, key, rule):
    source = _write_source(tmp_path / "src.jsonl", 30)
    with source.open("a") as f:
        f.write(line + "\n")
    with pytest.raises(DataError) as info:
        prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")
    text = str(info.value)
    assert f"{source}:31" in text and key in text and rule in text and "Fix:" in text


def test_too_few_samples_for_the_eval_split(tmp_path):
    source = _write_source(tmp_path / "src.jsonl", 10)
    with pytest.raises(DataError, match="eval_instances=20 must leave at least one"):
        prepare_dataset(_conversion(source), "qwen3", tmp_path / "cache")


def test_thinking_template_table_matches_llamafactory():
    from llamafactory.data.template import TEMPLATES, ReasoningTemplate

    registry = {n: t.thought_words for n, t in TEMPLATES.items() if isinstance(t, ReasoningTemplate)}
    assert registry == THINKING_TEMPLATES


def _encode_with_llamafactory(data_dir: Path, name: str, template_name: str, model_dir: Path) -> tuple[str, str]:
    """Tokenize the first sample exactly as LLaMA-Factory's SFT pipeline does; (prompt, labels) text."""
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments
    from transformers import AutoTokenizer

    data_args = DataArguments(template=template_name, dataset_dir=str(data_dir), dataset=name)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    attr = get_dataset_list([name], str(data_dir))[0]
    row = json.loads((data_dir / attr.dataset_name).read_text().splitlines()[0])
    example = get_dataset_converter("sharegpt", attr, data_args)(row)
    messages = example["_prompt"] + example["_response"]
    pairs = template.encode_multiturn(tokenizer, messages, example["_system"], example["_tools"])
    prompt_ids, response_ids = pairs[-1]
    return tokenizer.decode(prompt_ids), tokenizer.decode(response_ids)


def test_chain_of_thought_reaches_the_trained_tokens(tmp_path, demo):
    """The point of the conversion: with template qwen3, the reasoning is in the *labels*."""
    source = demo.root / "data" / "trajectories_reasoning.jsonl"
    originals = [json.loads(line) for line in source.read_text().splitlines()]
    data = prepare_dataset(Conversion(source=source, data_name="r", eval_instances=60), "qwen3", tmp_path / "cache")
    prompt, labels = _encode_with_llamafactory(data.dataset_dir, data.train_name, "qwen3", demo.model_dir)
    original = next(o for o in originals if o["messages"][1]["content"] in prompt)
    reasoning, answer = original["messages"][-1]["reasoning_content"], original["messages"][-1]["content"]
    assert labels.startswith(f"<think>\n{reasoning}\n</think>\n\n{answer}")

    # Left as a field, LLaMA-Factory ignores it and trains an empty think block instead.
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / "train.jsonl").write_text(json.dumps(original) + "\n")
    info = json.loads((data.dataset_dir / "dataset_info.json").read_text())[data.train_name]
    (raw_dir / "dataset_info.json").write_text(json.dumps({"raw": {**info, "file_name": "train.jsonl"}}))
    _, raw_labels = _encode_with_llamafactory(raw_dir, "raw", "qwen3", demo.model_dir)
    assert reasoning not in raw_labels and raw_labels.startswith("<think>\n\n</think>\n\n")
