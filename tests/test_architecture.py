"""The rooms hold: the engine imports nothing of the dashboard, charts draw without Streamlit, no module reaches into
another's private names, and no file grows past what one reads in a sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
CORE = sorted((REPO / "core").rglob("*.py"))
APP = sorted((REPO / "app").rglob("*.py"))
CHARTS = [p for p in APP if p.name in ("figures.py", "theory_figures.py") or "charts" in p.parts]


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in ``path``; relative imports made absolute."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *(node.module.split(".") if node.module else ())))
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _private_crossings(path: Path) -> list[str]:
    """``from m import _name`` and ``m._name`` where m is another module (dunders are public)."""
    private = lambda name: name.startswith("_") and not name.startswith("__")  # noqa: E731
    tree = ast.parse(path.read_text())
    modules = {}
    found = []
    for line, module, names in _imports(path):
        found += [f"{_rel(path)}:{line} imports {module}.{name}" for name in names if private(name)]
    ours = lambda name: name.split(".")[0] in ("core", "app")  # noqa: E731  (os._exit is the standard library's)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({alias.asname or alias.name.split(".")[0]: alias.name for alias in node.names
                            if ours(alias.name)})
        elif isinstance(node, ast.ImportFrom) and (node.level > 0 or ours(node.module or "")):
            modules.update({alias.asname or alias.name: alias.name for alias in node.names})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in modules):
            found.append(f"{_rel(path)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_the_lists_are_not_empty():
    assert len(CORE) > 10 and len(APP) > 5 and CHARTS  # a moved folder would make every check below pass vacuously


@pytest.mark.parametrize("path", CORE, ids=_rel)
def test_core_imports_nothing_of_the_dashboard(path):
    bad = [f"line {line}: {module}" for line, module, _ in _imports(path)
           if module.split(".")[0] in ("app", "streamlit", "plotly")]
    assert not bad, f"{_rel(path)} imports the dashboard's libraries: {bad}"


@pytest.mark.parametrize("path", CHARTS, ids=_rel)
def test_charts_import_no_streamlit(path):
    bad = [f"line {line}: {module}" for line, module, _ in _imports(path) if module.split(".")[0] == "streamlit"]
    assert not bad, f"{_rel(path)} builds figures and should not need Streamlit: {bad}"


def test_core_uses_no_other_modules_private_names():
    found = [hit for path in CORE for hit in _private_crossings(path)]
    assert not found, "make these public or move them where they are used:\n" + "\n".join(found)


def test_app_uses_no_other_modules_private_names():
    found = [hit for path in APP for hit in _private_crossings(path)]
    assert not found, "make these public or move them where they are used:\n" + "\n".join(found)


@pytest.mark.parametrize("path", CORE + APP, ids=_rel)
def test_no_file_is_over_400_lines(path):
    assert _lines(path) <= MAX_LINES, f"{_rel(path)} has {_lines(path)} lines; split it by what each part is for"
