"""The embedded demo: a tiny Qwen3, its tokenizer, synthetic data and a block config that uses them.

Built offline on first use and cached under `$TUNER_CACHE_DIR/demo-v<N>` (default
`~/.cache/tuner`). A file lock makes concurrent first uses (parallel trials, tests) build it once.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuner.config import yaml_io
from tuner.files import cache_root

log = logging.getLogger(__name__)

# Bump when the generated artefacts change, so stale caches are not reused.
DEMO_VERSION = 3
TRAIN_POOL, EVAL_SIZE, SEED = 300, 60, 1234
_TEMPLATE = Path(__file__).with_name("block.yaml")


@dataclass(frozen=True)
class Demo:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def block(self) -> Path:
        """Plain trajectories, `template: qwen3_nothink`."""
        return self.root / "block.yaml"

    @property
    def reasoning_block(self) -> Path:
        """Trajectories with `reasoning_content`, `template: qwen3` (keeps the chain of thought)."""
        return self.root / "block_reasoning.yaml"


def build_demo(root: Path | None = None) -> Demo:
    """Return the demo, building it first if this cache does not have it yet (~10 s)."""
    demo = Demo((root or cache_root()) / f"demo-v{DEMO_VERSION}")
    done = demo.root / ".complete"
    if done.exists():
        return demo
    demo.root.parent.mkdir(parents=True, exist_ok=True)
    with open(demo.root.parent / f".demo-v{DEMO_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _build(demo)
            done.touch()
    return demo


def _build(demo: Demo) -> None:
    from tuner.demo import _data, _model

    log.info("building the embedded demo in %s", demo.root)
    shutil.rmtree(demo.root, ignore_errors=True)
    data_dir = demo.root / "data"
    n = TRAIN_POOL + EVAL_SIZE
    _data.write_jsonl(data_dir / "trajectories.jsonl", _data.trajectories(n, SEED, reasoning=False))
    _data.write_jsonl(data_dir / "trajectories_reasoning.jsonl", _data.trajectories(n, SEED, reasoning=True))
    vocab = _model.build_tokenizer(_data.corpus_lines(4000, SEED + 1), demo.model_dir)
    _model.build_model(demo.model_dir, vocab, SEED)

    shutil.copyfile(_TEMPLATE, demo.block)
    reasoning = yaml_io.load(_TEMPLATE)
    training = reasoning["runtime_info"]["input"]["training"]
    conversion = reasoning["runtime_info"]["input"]["conversion"]
    training["template"] = "qwen3"
    conversion["source"] = "data/trajectories_reasoning.jsonl"
    conversion["data_name"] = "demo_sft_reasoning"
    header = "# The embedded demo with chain of thought: template qwen3 keeps reasoning_content.\n"
    demo.reasoning_block.write_text(header + yaml_io.dumps(reasoning), encoding="utf-8")
