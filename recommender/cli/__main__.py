"""``python -m recommender.cli``: the same as the ``recommender`` console script."""

from recommender.cli import main

main()
