"""`tune promote`: the best trial (or one the user names) becomes a production block config.

The user's block is edited as they wrote it (ruamel.yaml round-trip: comments, key order and
quoting are kept), the trial's parameters filled in where their space-file `target` says, with a
fresh `output_dir`, `overwrite_output_dir: false` and a `provenance` section. Beside it goes the
exact LLaMA-Factory YAML the trial ran. Nothing existing is replaced without --force. The trial's
global batch size is kept on the block's `n_gpus_per_node` (tuner.outputs.batch), or promote refuses.
"""

from __future__ import annotations

import datetime as dt
import difflib
import getpass
import io
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner import __version__
from tuner.config.block import load_block
from tuner.config.preflight import production_output_path
from tuner.errors import ConfigError
from tuner.files import write_text_atomic
from tuner.outputs.batch import ACCUM, PER_DEVICE, TrialBatch, batch_notes, fit_batch, refusal, trial_batch
from tuner.redact import redact_url
from tuner.study.front import Condition, describe_front, pick_by_rule, ranked
from tuner.study.store import StudyStore


@dataclass(frozen=True)
class Promotion:
    target: Path
    llamafactory_yaml: Path
    trial: int
    values: dict[str, float]  # the trial's value of each objective
    diff: str
    batch_notes: tuple[str, ...] = ()  # what was done to keep the trial's global batch size


def _round_trip() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096

    def float_with_dot(representer: Any, value: float) -> Any:
        # `1e-05` is a string to YAML 1.1 readers (PyYAML): always write a mantissa with a dot.
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return representer.represent_scalar("tag:yaml.org,2002:float", text)

    yaml.representer.add_representer(float, float_with_dot)
    return yaml


def pick_trial(store: StudyStore, number: int | None, best: str | None = None, where: Sequence[str] = ()) -> Any:
    """The trial to promote: `number`; else the best one; in a multi-objective study, the one the
    rule (`best` metric among trials meeting `where`) picks: with neither, the pick is ambiguous."""
    if number is not None and (best or where):
        raise ConfigError(
            "names a trial and a rule to pick one", key="--trial", value=number, fix="pass --trial, or --best/--where"
        )
    if number is None and store.multi_objective:
        return _pick_on_front(store, best, where)
    if best or where:
        raise ConfigError(
            f"study {store.name!r} has one objective ({store.metric_names()[0]}): its best trial is the pick",
            key="--best" if best else "--where",
            value=best or list(where),
            fix="drop --best/--where (or pass --trial N)",
        )
    if number is None:
        best_trial = store.best()
        if best_trial is None:
            raise ConfigError(
                f"study {store.name!r} has no COMPLETE trial to promote",
                key="STUDY",
                value=store.name,
                fix=f"run more trials (`tune resume {store.name} --budget 5`)",
            )
        return best_trial
    trial = next((t for t in store.trials() if t.number == number), None)
    if trial is None:
        raise ConfigError(
            f"study {store.name!r} has no trial {number}",
            key="--trial",
            value=number,
            fix=f"run `tune status {store.name}` to see its trials",
        )
    if trial.state.name != "COMPLETE":
        reason = trial.user_attrs.get("reason") or trial.user_attrs.get("exit_class") or "no final metric"
        raise ConfigError(
            f"trial {number} is {trial.state.name}, not COMPLETE ({reason}); only a trial that "
            "finished with its metric can be promoted",
            key="--trial",
            value=number,
            fix="promote a COMPLETE trial (omit --trial for the best one)",
        )
    return trial


def _pick_on_front(store: StudyStore, best: str | None, where: Sequence[str]) -> Any:
    names, front = store.metric_names(), store.pareto_front()
    if not front:
        raise ConfigError(
            f"study {store.name!r} has no COMPLETE trial to promote",
            key="STUDY",
            value=store.name,
            fix=f"run more trials (`tune resume {store.name} --budget 5`)",
        )
    if best is None:
        if len(front) == 1 and not where:
            return front[0]  # one trial beats every other on every objective: no ambiguity
        raise ConfigError(
            f"study {store.name!r} has several objectives and no single best trial; its Pareto front "
            f"({', '.join(names)}) is:\n{describe_front(front, names)}\n",
            key="--best",
            fix=f'pick one: --trial N, or a rule such as --best {names[0]} --where "{names[-1]}<=X"',
        )
    conditions = [Condition.parse(text, names) for text in where]
    return pick_by_rule(store.trials(), names, store.directions, best, conditions)


def _fresh_output_dir(block_path: Path, original: str, suffix: str) -> str:
    """`<original>-<suffix>`, numbered until the folder the production run would use is free."""
    base = f"{original.rstrip('/')}-{suffix}"
    candidate, n = base, 1
    while production_output_path(candidate, block_path.parent).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _absolutize_paths(section: Any, block_dir: Path) -> None:
    """Relative paths meant the original block's folder; the promoted file lives elsewhere."""
    places = [
        (section["conversion"], "source"),
        (section["training"], "model_name_or_path"),
        (section["training"], "deepspeed"),
    ]
    for mapping, key in places:
        value = mapping.get(key)
        if isinstance(value, str) and not Path(value).is_absolute() and (block_dir / value).exists():
            mapping[key] = str((block_dir / value).resolve())


def _alternative(store: StudyStore, gpus: int) -> int | None:
    """The best COMPLETE trial whose global batch size `gpus` divides (for a refusal's fix)."""
    done = ranked(store.trials(), store.directions)  # several objectives: another trade-off of the front
    fits = [t for t in done if isinstance(gbs := t.user_attrs.get("global_batch_size"), int) and gbs % gpus == 0]
    return fits[0].number if fits else None


def _batch(store: StudyStore, chosen: Any, block_path: Path) -> tuple[TrialBatch, tuple[int, int], int]:
    """The trial's batch, the (per_device, accum) that keep it on production's GPUs, and those GPUs."""
    source = load_block(block_path)
    ran_with = ((store.attrs().get("block") or {}).get("runtime_info") or {}).get("input", {}).get("training")
    batch = trial_batch(chosen.params, chosen.user_attrs, ran_with or source.training.model_dump())
    gpus = source.n_gpus_per_node
    fitted = fit_batch(batch, gpus)
    if fitted is None:
        raise refusal(chosen.number, batch, gpus, block_path, _alternative(store, gpus))
    return batch, fitted, gpus


def promote(
    store: StudyStore,
    *,
    trial: int | None = None,
    best: str | None = None,
    where: Sequence[str] = (),
    to: Path | None = None,
    force: bool = False,
) -> Promotion:
    attrs = store.attrs()
    if "block_file" not in attrs:
        raise ConfigError(
            f"study {store.name!r} was not created by tuner (no block recorded)",
            key="STUDY",
            value=store.name,
            fix="promote a study started with `tune start`",
        )
    chosen = pick_trial(store, trial, best, where)
    values = dict(zip(store.metric_names(), chosen.values, strict=True))
    block_path = Path(attrs["block_file"])
    if not block_path.is_file():
        raise ConfigError(
            "the study's block file no longer exists",
            file=str(block_path),
            fix="restore it; promote edits the block as you wrote it",
        )
    target = (to or block_path.with_name(f"{block_path.stem}.{store.name}-t{chosen.number:04d}.yaml")).resolve()
    lf_yaml = target.with_name(f"{target.stem}.llamafactory.yaml")
    for path in (target, lf_yaml):
        if path.exists() and not force:
            raise ConfigError("already exists", file=str(path), fix="pass --force to replace it, or --to another path")
    if target == block_path.resolve():
        raise ConfigError("would overwrite the study's own block", file=str(target), fix="choose another --to")

    batch, fitted, gpus = _batch(store, chosen, block_path)

    original_text = block_path.read_text(encoding="utf-8")
    yaml = _round_trip()
    data = yaml.load(original_text)
    section = data["runtime_info"]["input"]
    space = (attrs.get("space") or {}).get("params", {})
    for name, value in chosen.params.items():
        section[space.get(name, {}).get("target", "training")][name] = value
    training = section["training"]
    for key, value in zip((PER_DEVICE, ACCUM), fitted, strict=True):
        if training.get(key, 1) != value:
            training[key] = value
    if target.parent != block_path.resolve().parent:
        _absolutize_paths(section, block_path.resolve().parent)
    training["output_dir"] = _fresh_output_dir(
        target, str(training["output_dir"]), f"{store.name}-t{chosen.number:04d}"
    )
    training["overwrite_output_dir"] = False
    data["provenance"] = {
        "study": store.name,
        "trial": chosen.number,
        **(
            {"objectives": values}
            if store.multi_objective
            else {"metric": attrs.get("metric", "eval_loss"), "value": float(chosen.value)}
        ),
        "storage": redact_url(store.url),
        "tuner_version": __version__,
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source_block": str(block_path),
        "trial_dir": chosen.user_attrs.get("trial_dir"),
        "trial_gpus": batch.gpus,
        "trial_processes": batch.processes,
        "trial_global_batch_size": batch.global_batch,
        "global_batch_size": fitted[0] * fitted[1] * gpus,
    }
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    new_text = buffer.getvalue()

    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, new_text)
    trial_yaml = Path(chosen.user_attrs.get("trial_dir", "")) / "llamafactory.yaml"
    if trial_yaml.is_file():
        write_text_atomic(lf_yaml, trial_yaml.read_text(encoding="utf-8"))
    load_block(target)  # the promoted config must be a valid block
    diff = "".join(
        difflib.unified_diff(
            original_text.splitlines(True), new_text.splitlines(True), fromfile=str(block_path), tofile=str(target)
        )
    )
    record = {
        "trial": chosen.number,
        "path": str(target),
        "by": f"{getpass.getuser()}@{socket.gethostname()}",
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    store.set_attrs({"promotions": [*attrs.get("promotions", []), record]})
    notes = batch_notes(chosen.number, batch, fitted, gpus)
    return Promotion(target, lf_yaml, chosen.number, values, diff, notes)
