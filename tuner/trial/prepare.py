"""Everything before launch: parameters into the block, data, YAML, the trial's files and environment.

`TrialRequest` (what one trial is asked to run) lives here because preparing is the first thing
done with it; `tuner.trial.runner` takes the prepared trial from there to its end. `plan` and
`preview` write no trial file (`tune render`); `prepare` writes params.json, the YAML, the
DeepSpeed JSON and wandb's config file. Secrets never reach a file: `launch_env` returns them
apart, for the child's environment only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import deepspeed_configs
from tuner.config.block import Block
from tuner.config.credentials import SECRET_ENV
from tuner.config.overrides import apply_params, targets_for
from tuner.files import write_json_atomic, write_text_atomic
from tuner.trial.dataset import PreparedData, prepare_dataset
from tuner.trial.render import Rendered, render
from tuner.trial.workspace import TrialPaths, check_trials_dir

if TYPE_CHECKING:
    from tuner.trial.nodes import OtherNodes


@dataclass(frozen=True)
class TrialRequest:
    block: Block
    params: dict[str, Any]
    paths: TrialPaths
    targets: dict[str, str] = field(default_factory=dict)  # param -> "training" | "conversion"
    nproc: int = 1
    gpu_ids: tuple[str, ...] = ()
    run_name: str | None = None
    group: str | None = None  # wandb group (the study)
    timeout_s: float | None = None  # stop a trial that shows no progress (no output) for this long
    resume_from: str | None = None  # checkpoint to continue from (retry of an interrupted trial)
    # A multi-node trial: the parts on its other nodes, and this (first) node's address they meet at.
    other_nodes: OtherNodes | None = None
    master_addr: str = "127.0.0.1"
    # The study's progress points (samples seen) every trial evaluates at; () outside a study.
    progress_points: tuple[int, ...] = ()

    @property
    def nnodes(self) -> int:
        return 1 + (self.other_nodes.count if self.other_nodes is not None else 0)


def plan(request: TrialRequest) -> tuple[PreparedData, Rendered]:
    """Fill the parameters into the block, convert the data (cached) and render; writes no trial file."""
    paths = request.paths
    targets = {**targets_for(request.params), **request.targets}
    block = apply_params(request.block, request.params, targets, origin=f"trial {paths.root.name}")
    data = prepare_dataset(block.conversion, block.training.template, paths.data_cache)
    ds_config = deepspeed_configs.resolve(block.training.deepspeed, block.file)
    # Reuse the shared tokenized copy when it exists; otherwise tokenize into the trial's own folder,
    # from where a successful trial moves it into the shared cache (never two writers on one path).
    shared = tokenized_cache(block, data, paths)
    tokenized = shared if shared.is_dir() else paths.root / "tokenized"
    rendered = render(
        block,
        paths,
        data,
        ds_config=ds_config,
        nproc=request.nproc * request.nnodes,  # the world size: the global batch counts every node
        multi_node=request.nnodes > 1,
        run_name=request.run_name,
        resume_from=request.resume_from,
        tokenized_path=tokenized,
        tokenized_cache=shared,
        progress_points=request.progress_points,
    )
    return data, rendered


def _tokenizer_signature(model: str) -> list[Any]:
    folder = Path(model)
    if not folder.is_dir():
        return [model]  # a hub id: its name is what we know
    files = (
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "special_tokens_map.json",
        "chat_template.jinja",
    )
    return [model] + [
        [f, (folder / f).stat().st_size, (folder / f).stat().st_mtime_ns] for f in files if (folder / f).is_file()
    ]


def tokenized_cache(block: Block, data: PreparedData, paths: TrialPaths) -> Path:
    """Where LLaMA-Factory's tokenized copy of this data lives, shared by every trial that tokenizes
    the same conversion with the same template, cutoff, tokenizer and data arguments."""
    import importlib.metadata

    t = block.training
    spec = {
        "data": data.key,
        "template": t.template,
        "cutoff_len": t.cutoff_len,
        "tokenizer": _tokenizer_signature(t.model_name_or_path),
        "passthrough": t.passthrough,
        "llamafactory": importlib.metadata.version("llamafactory"),
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return paths.data_cache.parent / "tokenized" / key


def keep_tokenized(paths: TrialPaths, rendered: Rendered) -> None:
    """A trial that tokenized the data itself hands its copy to the shared cache (if still absent)."""
    own = paths.root / "tokenized"
    shared = rendered.tokenized_cache
    if shared is None or not own.is_dir() or shared.exists():
        return
    shared.parent.mkdir(parents=True, exist_ok=True)
    try:
        own.rename(shared)
    except OSError:  # another trial got there first, or another filesystem: keep ours where it is
        return


def preview(block: Block, params: dict[str, Any], trials_dir: Path) -> Rendered:
    """What a trial with these parameters would run (`tune render`), at a placeholder path."""
    paths = TrialPaths(check_trials_dir(trials_dir) / "preview" / "0000")
    return plan(TrialRequest(block, params, paths))[1]


def prepare(request: TrialRequest) -> tuple[PreparedData, Rendered]:
    """`plan`, then write params.json, llamafactory.yaml and ds_config.json into the workspace."""
    paths = request.paths
    data, rendered = plan(request)
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.params, request.params)
    write_text_atomic(paths.yaml, rendered.yaml_text)
    if rendered.ds_config is not None:
        write_json_atomic(paths.ds_config, rendered.ds_config)
    if request.block.experiment.wandb_mode != "disabled":
        _write_wandb_config(request)
    return data, rendered


def run_name(study: str, number: int) -> str:
    return f"{study}-{number:04d}"


def wandb_run_id(name: str) -> str:
    """A wandb run id from a trial's run name (`<study>-<number>`): unique per study and trial."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _write_wandb_config(request: TrialRequest) -> None:
    """The trial's parameters, study and folder, in wandb's config-file format. (WANDB_CONFIG_PATHS
    would be the direct way, but wandb 0.31 rejects it: 'str' is not allowed as a Sequence.)"""
    config = {
        "tuner_params": {"value": request.params},
        "tuner_study": {"value": request.group},
        "tuner_trial_dir": {"value": str(request.paths.root)},
    }
    write_text_atomic(request.paths.wandb_config, json.dumps(config, indent=2))


def launch_env(request: TrialRequest) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) environment variables of the trial's process: wandb's settings, and apart
    from them the block's credentials under the names their libraries read (SECRET_ENV)."""
    block, experiment = request.block, request.block.experiment
    secrets = {var: value for name, var in SECRET_ENV.items() if (value := block.secret(name))}
    if experiment.wandb_mode == "disabled":
        secrets.pop("WANDB_API_KEY", None)
        return {"WANDB_DISABLED": "true", "WANDB_MODE": "disabled"}, secrets
    env = {
        "WANDB_MODE": experiment.wandb_mode,
        "WANDB_PROJECT": experiment.wandb_project,
        "WANDB_DIR": str(request.paths.root),
        "WANDB_SILENT": "true",
    }
    if request.run_name:
        env["WANDB_NAME"] = request.run_name
        env["WANDB_RUN_ID"] = wandb_run_id(request.run_name)
    if request.group:
        env["WANDB_RUN_GROUP"] = request.group
    return env, secrets
