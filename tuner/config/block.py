"""The block config (`config.yaml`): pydantic models, loading and validation.

Keys that belong to tuner are strict (a typo is an error with a spelling hint). LLaMA-Factory keys
under `runtime_info.input.training` pass through to the trial YAML; the ones tuner reasons about
are typed. Relative paths resolve against the block file's folder, so a block means the same thing
whatever the current directory is.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tuner.config import yaml_io
from tuner.config._pydantic_errors import translate
from tuner.config.credentials import expand_credentials, take_hub_tokens
from tuner.config.experiment import Experiment
from tuner.errors import ConfigError
from tuner.redact import MASK

_DATA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Training(BaseModel):
    """`runtime_info.input.training`: LLaMA-Factory arguments. Unknown keys pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    model_name_or_path: str = Field(description="Local model folder (or hub id) to fine-tune.")
    stage: Literal["sft"] = Field("sft", description="tuner tunes supervised fine-tuning only.")
    finetuning_type: Literal["full", "lora", "freeze"] = "full"
    template: str = Field(description="LLaMA-Factory chat template, e.g. qwen3 or qwen3_nothink.")
    deepspeed: str | dict[str, Any] | None = Field(
        None, description="DeepSpeed config: a JSON file (relative to the block) or an inline mapping."
    )
    cutoff_len: int = Field(2048, gt=0, description="Max sequence length in tokens.")
    output_dir: str = Field(description="Run name / checkpoint dir of the production run.")
    per_device_train_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(1.0e-5, gt=0)
    num_train_epochs: float = Field(3.0, gt=0)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    save_steps: int | None = Field(None, ge=1)
    bf16: bool = False
    fp16: bool = False
    flash_attn: str | None = None
    rope_scaling: str | None = None
    overwrite_output_dir: bool | None = None
    save_only_model: bool | None = None
    resume_from_checkpoint: str | None = None
    use_unsloth: bool = False
    seed: int = 42

    @property
    def passthrough(self) -> dict[str, Any]:
        """LLaMA-Factory keys that tuner does not model; rendered as written."""
        return dict(self.model_extra or {})


class Conversion(_Strict):
    """`runtime_info.input.conversion`: trajectories JSONL -> LLaMA-Factory dataset."""

    source: Path = Field(description="OpenAI-style {'messages': [...]} JSONL, one sample per line.")
    data_name: str = Field(description="Dataset name registered in dataset_info.json.")
    max_instances: int | None = Field(None, ge=1, description="Cap on training samples.")
    eval_instances: int = Field(200, ge=1, description="Held out once, before any cap.")
    split_seed: int = Field(42, description="Seed of the eval hold-out and the training shuffle.")

    @field_validator("data_name")
    @classmethod
    def _data_name(cls, value: str) -> str:
        if not _DATA_NAME.match(value):
            raise ValueError("must be letters, digits, '_', '.', '-' and start with a letter or digit")
        return value


class RuntimeInput(_Strict):
    training: Training
    conversion: Conversion


class RuntimeInfo(_Strict):
    input: RuntimeInput


class RangeOverride(_Strict):
    """Narrowing of one tunable's range in `evolving.tunable_params`."""

    low: float | None = None
    high: float | None = None
    log: bool | None = None
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1)


class Evolving(_Strict):
    tunable_params: dict[str, RangeOverride | None] = Field(
        default_factory=dict,
        description="Parameters safe to tune: a list of names, or a mapping of names to narrowed ranges.",
    )
    global_batch_size: Annotated[list[int], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[min, max] of per_device × grad_accum × GPUs; other trials are skipped."
    )

    @field_validator("tunable_params", mode="before")
    @classmethod
    def _names_or_mapping(cls, value: Any) -> Any:
        """Accept a list of names as the mapping {name: None} (every name as the space file says)."""
        if value is None:
            return {}
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError("must list parameter names (strings), e.g. [learning_rate, num_train_epochs]")
            twice = sorted({v for v in value if value.count(v) > 1})
            if twice:
                raise ValueError(f"lists {twice} more than once; list each parameter once")
            return dict.fromkeys(value)
        if not isinstance(value, dict):
            raise ValueError("must be a list of parameter names or a mapping of names to ranges")
        return value


class Block(_Strict):
    """A whole block config. Build it with `load_block`, which resolves paths and env refs."""

    n_gpus_per_node: int = Field(1, ge=1, description="GPUs each node of the production run has.")
    runtime_info: RuntimeInfo
    experiment: Experiment = Field(default_factory=Experiment)
    credentials: dict[str, SecretStr | None] = Field(default_factory=dict)
    evolving: Evolving = Field(default_factory=Evolving)
    provenance: dict[str, Any] | None = Field(
        None, description="Where a promoted block came from (written by `tune promote`; informational)."
    )

    # Where the block came from; not part of the user's schema.
    source_path: Path | None = Field(None, exclude=True)
    unresolved_env: dict[str, str] = Field(default_factory=dict, exclude=True)

    @property
    def training(self) -> Training:
        return self.runtime_info.input.training

    @property
    def conversion(self) -> Conversion:
        return self.runtime_info.input.conversion

    @property
    def file(self) -> str:
        return str(self.source_path) if self.source_path else "<block>"

    @model_validator(mode="after")
    def _precision(self) -> Block:
        if self.training.bf16 and self.training.fp16:
            raise ValueError("bf16 and fp16 cannot both be true (runtime_info.input.training)")
        return self

    def secret(self, name: str) -> str | None:
        value = self.credentials.get(name)
        return value.get_secret_value() if value is not None else None

    def public_dict(self) -> dict[str, Any]:
        """The block as plain data with every credential masked (safe for logs, attrs, files)."""
        data = self.model_dump(mode="json", exclude={"credentials"})
        data["credentials"] = dict.fromkeys(self.credentials, MASK)
        return data

    @property
    def content_hash(self) -> str:
        """Stable hash of what the user wrote that changes results: guards resume. Credentials and
        provenance are left out, and so are unset defaults, so a tuner upgrade that adds an
        optional key does not make every existing study look changed."""
        data = self.model_dump(mode="json", exclude={"credentials", "provenance"}, exclude_unset=True)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths absolute against the block's folder (in place, before validation)."""
    runtime_input = (data.get("runtime_info") or {}).get("input") or {}
    conversion = runtime_input.get("conversion")
    if isinstance(conversion, dict) and isinstance(conversion.get("source"), str):
        conversion["source"] = str((base / conversion["source"]).resolve())
    training = runtime_input.get("training")
    if not isinstance(training, dict):
        return
    model = training.get("model_name_or_path")
    # A hub id ("Qwen/Qwen3-8B") stays as is; a path that exists beside the block is made absolute.
    if isinstance(model, str) and not Path(model).is_absolute() and (base / model).exists():
        training["model_name_or_path"] = str((base / model).resolve())
    ds = training.get("deepspeed")
    if isinstance(ds, str) and not Path(ds).is_absolute() and (base / ds).is_file():
        training["deepspeed"] = str((base / ds).resolve())


def parse_block(data: Any, *, file: str = "<block>", base_dir: Path | None = None) -> Block:
    """Validate already-loaded YAML data as a block. Raises ConfigError on any problem."""
    if not isinstance(data, dict):
        raise ConfigError(
            "must be a mapping with runtime_info, evolving, ... at the top level",
            file=file,
            value=type(data).__name__,
            fix="see README.md, 'The block config', for a complete example",
        )
    data = json.loads(json.dumps(data, default=str))  # deep copy; the caller's dict stays as is
    credentials, unresolved = expand_credentials(take_hub_tokens(data, file), file)
    data["credentials"] = credentials
    if base_dir is not None:
        _resolve_paths(data, base_dir)
    try:
        block = Block.model_validate(data)
    except ValidationError as e:
        raise translate(e, Block, file=file) from None
    return block.model_copy(
        update={"source_path": Path(file) if file != "<block>" else None, "unresolved_env": unresolved}
    )


def load_block(path: str | Path) -> Block:
    """Read, expand and validate a block config file."""
    path = Path(path).expanduser().resolve()
    return parse_block(yaml_io.load(path), file=str(path), base_dir=path.parent)
