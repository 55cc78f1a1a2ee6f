"""Reading a recipe: its YAML (kept with line numbers), its checks and the dataclasses it becomes.

``parse.py`` reads and checks the whole recipe (``load_recipe``), ``entries.py`` its teachers,
methods and pairs, ``train.py`` its ``train:`` blocks and ``tune.py`` its ``tune:`` block;
``types.py`` holds the dataclasses it returns; ``checker.py`` and ``yaml_lines.py`` are the
line-numbered checking and parsing helpers; ``plugins.py`` imports a recipe's plugins.
"""
