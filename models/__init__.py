"""The built-in models, shipped in the wheel as the package ``recommender_models``.

This folder holds data only: the encoder registry (``registry.yaml``), the default
static encoder (``static/minilm-m2v``) and the learned-ranker parameters
(``ranker/*.json``). ``pyproject.toml`` maps it to the import name
``recommender_models``, so an installed wheel finds the files with
``importlib.resources``; :mod:`recommender.model_files` is the one place that looks
for them.
"""
