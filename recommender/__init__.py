"""Related-article suggestions for a folder of markdown articles: library and CLI.

The version is defined here once; ``pyproject.toml`` reads it for the package metadata
and ``recommender --version`` prints it.
"""

__version__ = "0.2.0"
