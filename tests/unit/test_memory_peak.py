"""The measured side of the memory estimate: the per-rank peak files, their reader, `tune status` lines."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tuner.outputs.summary import memory_lines
from tuner.trial.peak_memory import peak_attrs, peak_memory_callback, read_peak, write_peak


def test_peak_is_the_largest_over_ranks(tmp_path):
    assert read_peak(tmp_path) is None and peak_attrs(tmp_path) == {}
    write_peak(tmp_path, 0, 40 * 2**30)
    write_peak(tmp_path, 1, 42 * 2**30)
    (tmp_path / "peak_memory" / "rank2.json").write_text("{half", encoding="utf-8")  # a rank killed mid-write
    assert read_peak(tmp_path) == 42 * 2**30
    assert peak_attrs(tmp_path) == {"memory_peak_gib": 42.0}


def test_callback_writes_nothing_without_cuda(tmp_path):
    pytest.importorskip("transformers")
    import torch

    callback = peak_memory_callback()
    args = SimpleNamespace(output_dir=str(tmp_path), process_index=0)
    callback.on_evaluate(args, None, None)
    callback.on_train_end(args, None, None)
    assert (read_peak(tmp_path) is not None) == torch.cuda.is_available()


def test_status_lines_show_estimate_against_measured():
    def trial(number, **attrs):
        return SimpleNamespace(number=number, user_attrs=attrs)

    lines = memory_lines(
        [
            trial(0, memory_estimate_gib=40.0, memory_predicted_gib=42.0, memory_usable_gib=72.0, memory_peak_gib=44.0),
            trial(
                1, memory_estimate_gib=90.0, memory_predicted_gib=92.0, memory_usable_gib=72.0, exit_class="infeasible"
            ),
            trial(2, exit_class="ok"),
        ]
    )
    assert lines == [
        "#0: estimate 40.0 GiB (predicted peak 42.0 of 72.0 GiB usable), measured 44.0 GiB (1.10 x estimate)",
        "#1: estimate 90.0 GiB (predicted peak 92.0 of 72.0 GiB usable), not run",
    ]
