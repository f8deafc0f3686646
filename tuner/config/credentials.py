"""Credentials of a block: `${ENV}` references, hub tokens taken out of `training`, the names libraries read.

A credential reaches a trial only through its environment, under the variable its library reads
(`SECRET_ENV`); it is never written into a trial YAML, the study or a log. Hub tokens that users
put into `training` (LLaMA-Factory's own `hf_hub_token` ...) are moved into `credentials` when the
block is read, so that they follow the same road.
"""

from __future__ import annotations

import os
import re
from typing import Any

from tuner.errors import ConfigError

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$|^\$([A-Za-z_][A-Za-z0-9_]*)$")
# credential -> the environment variable its library reads (wandb; huggingface_hub; modelscope).
SECRET_ENV = {"wandb_api_key": "WANDB_API_KEY", "hf_hub_token": "HF_TOKEN", "ms_hub_token": "MODELSCOPE_API_TOKEN"}
# LLaMA-Factory's token arguments; om_hub_token (openMind) has no environment variable we can vouch
# for, so preflight refuses it rather than write it into every trial's YAML.
HUB_TOKENS = ("hf_hub_token", "ms_hub_token", "om_hub_token")


def take_hub_tokens(data: dict[str, Any], file: str) -> dict[str, Any]:
    """The block's `credentials`, plus any hub token found in `training` (removed from there)."""
    credentials = dict(data.get("credentials") or {})
    training = ((data.get("runtime_info") or {}).get("input") or {}).get("training")
    if not isinstance(training, dict):
        return credentials
    for key in HUB_TOKENS:
        if key not in training:
            continue
        value = training.pop(key)
        if key in credentials and credentials[key] != value:
            raise ConfigError(
                "is set both in training and in credentials, to different values",
                file=file,
                key=f"runtime_info.input.training.{key}",
                value="<hidden>",
                fix=f"keep it only under credentials.{key}",
            )
        credentials[key] = value
    return credentials


def expand_credentials(raw: dict[str, Any], file: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Expand `${ENV}` references. An unset variable leaves the credential empty (preflight says
    so if the credential is needed), so a block with `${WANDB_API_KEY}` still works offline."""
    expanded: dict[str, Any] = {}
    unresolved: dict[str, str] = {}
    for key, value in raw.items():
        if value is None:
            expanded[key] = None
            continue
        if not isinstance(value, str):
            raise ConfigError(
                "must be a string or a ${ENV_VAR} reference",
                file=file,
                key=f"credentials.{key}",
                value="<hidden>",
                fix=f"write `{key}: ${{{key.upper()}}}` and export that variable",
            )
        match = _ENV_REF.match(value.strip())
        if match:
            var = match.group(1) or match.group(2)
            resolved = os.environ.get(var)
            if not resolved:
                unresolved[key] = var
            expanded[key] = resolved or None
        else:
            expanded[key] = value
    return expanded, unresolved
