"""``kdzoo tune``: every method of a recipe searched with the same budget on validation data, then final runs.

settings.py (the recipe's ``tune:`` block) -> studies.py (what is searched, trials and finals as runs) ->
search.py (Optuna: storage, sampler, ask/tell) and pruning.py (in the training process) -> runner.py
(the phases) -> report.py / figures.py (the tuned leaderboard), verdict.py (its statistics), budget.py
(--dry-run). Optuna is imported only by search.py and pruning.py, when a tuning runs.
"""
