"""flows/ is orchestration only: it may not import the heavy libraries that hold the logic."""

import ast
from pathlib import Path

FORBIDDEN = {"pandas", "spacy", "sklearn", "bertopic", "numpy", "torch", "sentence_transformers"}
FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_flows_import_no_logic_libraries():
    files = sorted(FLOWS.glob("*.py"))
    assert files, "no flow files found"
    for path in files:
        assert not (_imports(path) & FORBIDDEN), f"{path.name} imports {_imports(path) & FORBIDDEN}"
