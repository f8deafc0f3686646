"""Running a study: `tune start` / `resume` / `--join` from validated options to a finished study.

Owns: option checks, the study's run shape (GPUs per trial, concurrency), the scheduler's settings,
signal handling, and the Ray Tune driver (the only code that imports Ray Tune).
May import: `tuner.study`, `tuner.trial`, `tuner.config` and the bottom.
"""
