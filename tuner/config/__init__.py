"""What the user wrote, read and checked: the block, the search space, `--set` overrides, preflight.

Owns: the block's pydantic models, YAML in and out, pydantic error translation, the search space
(Optuna distributions), LLaMA-Factory's known keys and templates, thinking templates, DeepSpeed
configs, and the preflight checks run before any GPU time is spent.
May import: the bottom only (`tuner.errors`, `tuner.files`, `tuner.redact`). Pure data and rules:
no processes, no study, no Ray.
"""
