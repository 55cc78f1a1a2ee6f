"""Running a plan: the run store, launchers, and the executor that trains runs.

``run.py`` builds data, teacher, students and losses from ``RunSpec``s and trains them;
``launch.py`` (local worker processes) and ``slurm.py`` (Slurm jobs) hand it units of runs;
``store.py`` keeps the run folders under ``OUT/runs/<hash>/`` and ``locks.py`` their locks;
``provenance.py`` records the machine a run used; ``eta.py`` estimates the time left.
"""
