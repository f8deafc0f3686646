"""One folder per trial: `trials/<study>/<number:04d>/` (DESIGN.md 5.1).

params.json, llamafactory.yaml, ds_config.json, train.log, result.json and output/ (the
LLaMA-Factory output_dir). A trial never reuses another's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tuner.errors import ConfigError

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_study_name(name: str) -> str:
    if not _STUDY_NAME.match(name):
        raise ConfigError(
            "a study name must be 1-100 letters, digits, '_', '.', '-' (it names a folder)",
            key="--study",
            value=name,
            fix="choose e.g. qwen3-8b-sft-lr",
        )
    return name


def check_trials_dir(path: Path) -> Path:
    path = path.expanduser().resolve()
    # llamafactory-cli re-joins its arguments with spaces and splits them again before torchrun, so
    # a trial YAML under such a path could not be re-run by hand (`llamafactory-cli train <yaml>`).
    if any(ch.isspace() for ch in str(path)):
        raise ConfigError(
            "the trials folder must not contain whitespace (llamafactory-cli splits paths on it)",
            key="--trials-dir",
            value=str(path),
            fix="choose a folder without spaces",
        )
    return path


@dataclass(frozen=True)
class TrialPaths:
    root: Path

    @property
    def params(self) -> Path:
        return self.root / "params.json"

    @property
    def yaml(self) -> Path:
        return self.root / "llamafactory.yaml"

    @property
    def ds_config(self) -> Path:
        return self.root / "ds_config.json"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def evaluator_log(self) -> Path:
        return self.root / "evaluator.log"

    @property
    def evaluation(self) -> Path:
        """The custom evaluator's JSON output (experiment.evaluator)."""
        return self.root / "evaluation.json"

    @property
    def wandb_config(self) -> Path:
        """The trial's parameters for wandb, which reads config-defaults.yaml from the working
        directory (the trial folder); runs live under wandb/ here."""
        return self.root / "config-defaults.yaml"

    @property
    def placement(self) -> Path:
        """Where Ray ran the trial: node, host, GPU ids (written by the trial's Ray worker)."""
        return self.root / "placement.json"

    @property
    def pid(self) -> Path:
        """Process group id and host of the running trial (removed when it ends)."""
        return self.root / "trial.pid"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def data_cache(self) -> Path:
        """Conversions shared by all trials under the same trials folder."""
        return self.root.parent.parent / ".cache" / "data"


def trial_paths(trials_dir: Path, study: str, number: int) -> TrialPaths:
    return TrialPaths(check_trials_dir(trials_dir) / check_study_name(study) / f"{number:04d}")


def create_fresh(paths: TrialPaths) -> TrialPaths:
    """Create the trial folder; refuse one that already holds a trial (never overwrite one)."""
    paths.root.parent.mkdir(parents=True, exist_ok=True)
    try:
        paths.root.mkdir()
    except FileExistsError:
        if any(paths.root.iterdir()):
            raise ConfigError(
                "trial folder already exists and is not empty",
                file=str(paths.root),
                fix="use a new study name or another --trials-dir; tuner never overwrites a trial",
            ) from None
    return paths


def next_free(trials_dir: Path, study: str) -> TrialPaths:
    """The first unused trial number of a study folder (for trials run outside a study)."""
    base = check_trials_dir(trials_dir) / check_study_name(study)
    base.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        paths = TrialPaths(base / f"{number:04d}")
        try:
            paths.root.mkdir()
            return paths
        except FileExistsError:
            number += 1
