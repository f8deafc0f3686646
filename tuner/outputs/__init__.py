"""What a study gives its users after (or while) it runs: promote, report, dashboard.

Owns: the production config written from a trial, the offline HTML/PNG report, the read-only
optuna-dashboard. Reads the study; never writes a trial.
May import: `tuner.study`, `tuner.trial`, `tuner.config` and the bottom.
"""
