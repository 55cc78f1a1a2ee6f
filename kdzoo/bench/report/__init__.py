"""Reading results: the leaderboards and their plot, learning curves, and ``kdzoo compare``.

``leaderboard.py`` builds leaderboard.csv and summary.csv from a run store (statistics through
``kdzoo.stats``), ``leaderboard_md.py`` leaderboard.md, ``leaderboard_plot.py`` the plot,
``curves.py`` the learning curves; ``compare.py`` compares a rerun with a reference
(``compare_runs.py`` reads the two sides).
"""
