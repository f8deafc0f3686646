"""One training run, start to end, with no Ray and no Optuna: `trials/<study>/<number>/`.

Owns: the trial workspace, data conversion (cached by content), rendering the LLaMA-Factory YAML
(pure), launching torchrun (the only code that starts processes), following its progress,
classifying how it ended, and the guard and process-tree code that leave no orphan worker behind.
May import: `tuner.config` and the bottom. Kept import-light: `python -m tuner.trial.guard` runs
for every trial.
"""
