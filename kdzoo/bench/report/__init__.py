"""Reading results: the leaderboards and their plot, learning curves, and ``kdzoo compare``.

``leaderboard.py`` builds leaderboard.csv, summary.csv and leaderboard.md from a run store
(statistics through ``kdzoo.stats``), ``leaderboard_plot.py`` the plot, ``curves.py`` the
learning curves, ``compare.py`` the comparison of a rerun with a reference.
"""
