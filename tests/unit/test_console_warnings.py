"""Library warnings stay off the console and land in the study's driver.log; tuner's own words stay on it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import optuna
import pytest

from tuner.cli import logs
from tuner.cli.logs import setup_logging, study_log


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """setup_logging changes process-wide logging; put everything back for the other tests."""
    root, tuner_log, warnings_log = logging.getLogger(), logging.getLogger("tuner"), logging.getLogger("py.warnings")
    saved = (root.level, list(root.handlers), tuner_log.level, warnings_log.propagate, list(warnings_log.handlers))
    # pytest swaps warnings.showwarning per test; start from a clean capture so setup_logging installs its own.
    logging.captureWarnings(False)
    logs._pending.records.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the default shows a warning once per place; tests repeat places
        yield
    logging.captureWarnings(False)
    logs._pending.records.clear()
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    tuner_log.setLevel(saved[2])
    warnings_log.propagate = saved[3]
    warnings_log.handlers[:] = saved[4]


def _optuna_experimental_warning() -> None:
    """The warning every `tune start` used to print: Optuna's own code path, not a hand-made warn()."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study().set_metric_names(["eval_loss"])


def test_library_warning_goes_to_the_driver_log_not_the_screen(capfd, tmp_path):
    setup_logging(False)
    _optuna_experimental_warning()  # while the study is prepared: no file yet
    assert capfd.readouterr().err == ""
    log_file = tmp_path / "trials" / "study" / "driver.log"
    with study_log(log_file):
        warnings.warn("raised while trials run", UserWarning, stacklevel=1)
        assert capfd.readouterr().err == ""
    text = log_file.read_text()
    assert "ExperimentalWarning" in text and "set_metric_names" in text  # flushed from the buffer
    assert "raised while trials run" in text
    assert text.index("set_metric_names") < text.index("raised while trials run")


def test_tuner_info_goes_to_the_file_and_tuner_warnings_to_both(capfd, tmp_path):
    setup_logging(False)
    log_file = tmp_path / "driver.log"
    with study_log(log_file):
        logging.getLogger("tuner.study.session").info("trial 3 asked")
        logging.getLogger("tuner.study.session").warning("disk almost full")
        logging.getLogger("some.library").info("library chatter")
    err = capfd.readouterr().err
    assert "disk almost full" in err and "trial 3 asked" not in err
    text = log_file.read_text()
    assert "trial 3 asked" in text and "disk almost full" in text and "library chatter" not in text


def test_verbose_shows_library_warnings_too(capfd, tmp_path):
    setup_logging(True)
    log_file = tmp_path / "driver.log"
    with study_log(log_file):
        warnings.warn("visible with --verbose", UserWarning, stacklevel=1)
    assert "visible with --verbose" in capfd.readouterr().err
    assert log_file.read_text().count("UserWarning: visible with --verbose") == 1  # once, not once per handler


def test_after_the_study_warnings_are_held_again_and_the_file_is_closed(capfd, tmp_path):
    setup_logging(False)
    log_file = tmp_path / "driver.log"
    with study_log(log_file):
        pass
    warnings.warn("after the study", UserWarning, stacklevel=1)
    assert capfd.readouterr().err == "" and "after the study" not in log_file.read_text()
    assert "UserWarning: after the study" in logs._pending.records[-1].getMessage()
    handlers = logging.getLogger().handlers + logging.getLogger("py.warnings").handlers
    assert not [h for h in handlers if getattr(h, "baseFilename", None) == str(log_file)]


def test_setup_logging_twice_adds_no_second_console(capfd):
    setup_logging(False)
    setup_logging(False)
    logging.getLogger("tuner").warning("said once")
    assert capfd.readouterr().err.count("said once") == 1
