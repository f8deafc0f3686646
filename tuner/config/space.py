"""Search space: a space file + the block's `evolving.tunable_params` -> Optuna distributions.

The space file says what each tunable is (type, safe range, where its value lands in the block);
the block picks which ones a study tunes and may narrow them. The result is a `SearchSpace`, a
plain value that serializes to JSON (stored in the study so a resume can refuse a changed space).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config.space_file import DEFAULT_SPACE, RENDERER_OWNED, GlobalBatch, ParamSpec, check_range, load_space_file
from tuner.errors import SpaceError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from tuner.config.block import Block, RangeOverride


@dataclass(frozen=True)
class Param:
    """One tunable of a study, after narrowing."""

    name: str
    type: str
    target: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def distribution(self) -> BaseDistribution:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(list(self.choices or ()))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))  # type: ignore[arg-type]
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)  # type: ignore[arg-type]

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low is not None and self.high is not None and self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    params: dict[str, Param]
    global_batch: GlobalBatch | None = None
    source: str = ""

    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: p.distribution() for name, p in self.params.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": {n: {k: v for k, v in vars(p).items() if k != "name"} for n, p in self.params.items()},
            "global_batch_size": self.global_batch.model_dump() if self.global_batch else None,
        }

    def global_batch_size(self, params: dict[str, Any], block: Block, gpus: int) -> int:
        """per_device × grad_accum × GPUs for a trial, taking untuned values from the block."""
        per_device = params.get("per_device_train_batch_size", block.training.per_device_train_batch_size)
        accum = params.get("gradient_accumulation_steps", block.training.gradient_accumulation_steps)
        return int(per_device) * int(accum) * max(1, gpus)

    def violation(self, params: dict[str, Any], block: Block, gpus: int) -> str | None:
        """Why a trial's parameters break the space's constraints, or None if they do not."""
        if self.global_batch is None:
            return None
        size = self.global_batch_size(params, block, gpus)
        if not self.global_batch.min <= size <= self.global_batch.max:
            return f"effective global batch size {size} is outside [{self.global_batch.min}, {self.global_batch.max}]"
        return None


def _narrow(name: str, spec: ParamSpec, override: RangeOverride | None, file: str) -> Param:
    key = f"evolving.tunable_params.{name}"
    base = Param(
        name,
        spec.type,
        spec.target,
        spec.low,
        spec.high,
        spec.log,
        spec.step,
        tuple(spec.choices) if spec.choices else None,
    )
    if override is None or not override.model_fields_set:
        return base
    o = override
    if o.choices is not None:
        outside = [c for c in o.choices if not base.contains(c)]
        if outside:
            raise SpaceError(
                f"choices must lie inside the space file's range {_describe(base)}",
                file=file,
                key=f"{key}.choices",
                value=outside,
                fix="pick choices from that range, or pass --space with a wider space file",
            )
        if spec.type == "int" and any(not isinstance(c, int) or isinstance(c, bool) for c in o.choices):
            raise SpaceError(
                "an int parameter needs whole-number choices",
                file=file,
                key=f"{key}.choices",
                value=o.choices,
                fix="write choices such as [1, 2, 4]",
            )
        return Param(name, "categorical", spec.target, choices=tuple(o.choices))
    if spec.type == "categorical":
        raise SpaceError(
            "is categorical: narrow it with `choices`, not low/high/log/step",
            file=file,
            key=key,
            value=o.model_dump(exclude_unset=True),
            fix=f"write `{name}: {{choices: {list(spec.choices or [])[:2]}}}`",
        )
    low = spec.low if o.low is None else o.low
    high = spec.high if o.high is None else o.high
    log = spec.log if o.log is None else o.log
    step = o.step if o.step is not None else (None if o.log else spec.step)
    try:
        check_range(spec.type, low, high, log, step, None)
    except ValueError as e:
        raise SpaceError(
            str(e),
            file=file,
            key=key,
            value=o.model_dump(exclude_unset=True),
            fix="choose low < high (and low > 0 for a log range)",
        ) from None
    assert spec.low is not None and spec.high is not None  # guaranteed by ParamSpec
    if low < spec.low or high > spec.high:  # type: ignore[operator]
        raise SpaceError(
            f"may only narrow the space file's range {_describe(base)}",
            file=file,
            key=key,
            value={"low": low, "high": high},
            fix="stay inside that range, or pass --space with a wider space file",
        )
    return Param(name, spec.type, spec.target, low, high, log, step)


def _describe(p: Param) -> str:
    return str(list(p.choices)) if p.choices is not None else f"[{p.low}, {p.high}]"


def build_space(block: Block, space_path: Path | None = None) -> SearchSpace:
    """Pick and narrow the block's tunables from the space file. Raises SpaceError."""
    path = Path(space_path or DEFAULT_SPACE)
    space_file = load_space_file(path)
    overrides = block.evolving.tunable_params
    params: dict[str, Param] = {}
    problems: list[SpaceError] = []
    for name, override in overrides.items():
        key = f"evolving.tunable_params.{name}"
        if name in RENDERER_OWNED:
            problems.append(
                SpaceError(
                    "is set by tuner for every trial and cannot be tuned",
                    file=block.file,
                    key=key,
                    value=name,
                    fix=f"remove `{name}` from evolving.tunable_params",
                )
            )
            continue
        spec = space_file.params.get(name)
        if spec is None:
            problems.append(
                SpaceError(
                    f"is not a parameter of the space file {path}",
                    file=block.file,
                    key=key,
                    value=name,
                    fix=f"use one of {sorted(space_file.params)}, or add it to the space file",
                )
            )
            continue
        try:
            params[name] = _narrow(name, spec, override, block.file)
        except SpaceError as e:
            problems.append(e)
    if problems:
        raise SpaceError.many(problems)  # type: ignore[arg-type]
    gbs = block.evolving.global_batch_size
    global_batch = space_file.constraints.global_batch_size
    if gbs:
        if gbs[0] > gbs[1] or gbs[0] < 1:
            raise SpaceError(
                "must be [min, max] with 1 <= min <= max",
                file=block.file,
                key="evolving.global_batch_size",
                value=gbs,
                fix="write e.g. [8, 128]",
            )
        global_batch = GlobalBatch(min=gbs[0], max=gbs[1])
    return SearchSpace(params=params, global_batch=global_batch, source=str(path))
