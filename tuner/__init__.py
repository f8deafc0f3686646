"""tuner: hyperparameter auto-tuning of LLaMA-Factory SFT runs (Ray Tune + Optuna).

The public surface is the `tune` command line (tuner.cli). Modules are small and private to
their one job; see DESIGN.md for the data flow.
"""

from __future__ import annotations

__version__ = "0.1.0"
