"""YAML in and out, with numbers read as numbers.

PyYAML implements YAML 1.1, where `1e-5` (no dot) is a *string*; users write exactly that for
learning rates. This loader resolves YAML 1.2 floats, so `1e-5`, `1E5` and `.5` are floats.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import ConfigError

_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 float resolution."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """SafeDumper that never writes aliases (rendered configs are read by other tools)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def loads(text: str, *, file: str = "<string>") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(
            f"is not valid YAML at {where}: {problem}",
            file=file,
            fix="correct the YAML syntax at that position (indentation, quotes, colons)",
        ) from e


def load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(
            "file does not exist", file=str(path), fix="check the path passed with --config/--space"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot be read: {e.strerror}", file=str(path)) from e
    return loads(text, file=str(path))


def dumps(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
