"""The study in SQL, the source of truth of a tuning run, and the rules that write it.

Owns: the store (the only code that talks to Optuna storage), samplers, one driver's session
(which trial runs next, how each outcome is recorded), the budget ledger and gate, retry and OOM
policy, leases of the drivers, recovery of orphaned trials, and freeing disk of finished trials.
May import: `tuner.trial`, `tuner.config` and the bottom. No Ray.
"""
