"""Time tuner's YAML loader (ruamel.yaml, pure-Python YAML 1.2) against the PyYAML loader it replaced.

The old loader (PyYAML SafeLoader plus a hand-written YAML 1.2 float resolver) is reproduced here so
both run side by side in one process on the same files: the demo block and the default search
space, i.e. what every `tune` command reads. Prints the median time of one load and the ratio.

    .venv/bin/python bench/yaml_load.py [--repeat 300]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.config import yaml_io  # noqa: E402

FILES = [ROOT / "tuner" / "demo" / "block.yaml", ROOT / "search_spaces" / "sft_full.yaml"]

# --- the loader tuner used before (tuner/config/yaml_io.py up to this change) ---
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _OldLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 float resolution (the previous implementation)."""


_OldLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_OldLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def old_loads(text: str) -> Any:
    return yaml.load(text, Loader=_OldLoader)  # a SafeLoader subclass: safe


def _median_s(fn: Callable[[str], Any], text: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300, help="loads per loader and file")
    args = parser.parse_args()
    rows = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        assert old_loads(text) == yaml_io.loads(text), f"{path}: the two loaders disagree"
        for fn in (old_loads, yaml_io.loads):  # warm-up: imports, regex compilation
            fn(text)
        # Interleave the two so drift in machine load hits both alike.
        old, new = [], []
        for _ in range(3):
            old.append(_median_s(old_loads, text, args.repeat // 3))
            new.append(_median_s(yaml_io.loads, text, args.repeat // 3))
        old_ms, new_ms = statistics.median(old) * 1e3, statistics.median(new) * 1e3
        rows.append(
            {
                "file": str(path.relative_to(ROOT)),
                "bytes": len(text.encode()),
                "old_pyyaml_ms": round(old_ms, 3),
                "new_ruamel_ms": round(new_ms, 3),
                "ratio_new_over_old": round(new_ms / old_ms, 2),
            }
        )
    print(f"{'file':34} {'bytes':>6} {'old PyYAML ms':>14} {'new ruamel ms':>14} {'new/old':>8}")
    for r in rows:
        print(
            f"{r['file']:34} {r['bytes']:>6} {r['old_pyyaml_ms']:>14.3f} {r['new_ruamel_ms']:>14.3f} "
            f"{r['ratio_new_over_old']:>8.2f}"
        )
    print(json.dumps({"repeat": args.repeat, "python": sys.version.split()[0], "rows": rows}))


if __name__ == "__main__":
    main()
