"""Domain errors of the library.

The CLI maps each to an exit code and the HTTP service to a status code, each in
one place (``recommender/cli/__init__.py`` and ``api/errors.py``), so the library
never needs to know how it is being called.
"""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class: every error the library raises on purpose derives from it."""


class CorpusError(RecommenderError):
    """The content folder cannot be used at all (missing, empty, unreadable)."""


class ArticleNotFound(RecommenderError):
    """An article reference (id, url, slug or path) matched no article."""


class IndexNotFound(RecommenderError):
    """No index exists at the given directory."""


class IndexMismatch(RecommenderError):
    """An index was built with another model or configuration than the one asked for."""


class IndexCorrupt(IndexMismatch):
    """A file of an index directory is unreadable or disagrees with the articles
    (truncated, wrong shape, rows out of range, not finite); the message names the
    file and the problem. Never loaded: the index must be rebuilt."""


class ModelNotAvailable(RecommenderError):
    """The encoder named in the configuration cannot be loaded on this machine."""


class InvalidFilter(RecommenderError):
    """A suggestion filter names something that does not exist (e.g. an unknown subject)."""


class FillError(RecommenderError):
    """The batch-fill job cannot run (e.g. another fill holds the folder's lock)."""


class SuggestionsFileError(RecommenderError):
    """A suggestions file cannot be read (bad JSON, missing fields, repeated url)."""


class SchemaError(RecommenderError):
    """A schema file cannot be used (unreadable, invalid YAML, unknown or mistyped key)."""


class ConfigError(RecommenderError):
    """A configuration file cannot be used (unreadable, invalid YAML, unknown or mistyped
    key); the message names the file and the key."""


class FillIncomplete(FillError):
    """The fill ran to the end, but some files could not be read or written (see its report)."""


class DecisionError(RecommenderError):
    """An editor's decision cannot be recorded or applied (a bad decisions file, an
    unknown action, a link that cannot be written); the message names the file."""
