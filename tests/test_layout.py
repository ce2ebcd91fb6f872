"""The library's layout shows its data flow: no module imports one that comes after it.

corpus → text → embeddings → index → ranking → recommender (the README's module table);
so there are no import cycles, and storage knows nothing of ranking.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "recommender"
#: the library's modules in data-flow order (each may import only those before it)
ORDER = ["errors", "config", "references", "corpus", "sources", "text", "encoders",
         "embedding", "vectors", "index", "lexical", "learned", "ranking_state", "ranking",
         "explain", "neighbours", "fitting", "pipeline", "decisions", "recommender"]


def imported(module: str) -> set[str]:
    """Library modules ``module`` imports, at the top or inside functions."""
    tree = ast.parse((ROOT / f"{module}.py").read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[1] for n in names if n.startswith("recommender.")}


def test_no_import_runs_back_up_the_data_flow():
    for position, module in enumerate(ORDER):
        later = imported(module) & set(ORDER[position:])
        assert not later, f"recommender/{module}.py imports {sorted(later)}, which come after it"


def test_storage_knows_nothing_of_ranking():
    assert not imported("index") & {"lexical", "learned", "ranking_state", "ranking", "explain",
                                    "neighbours", "pipeline"}
