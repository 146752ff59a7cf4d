"""The layers of plugins/module_utils: every import runs down a layer (or stays in its package), and no
private name crosses a package. The map is README's ("The code, in layers")."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
PREFIX = "ansible_collections.stacklift.migrate.plugins.module_utils."

# Lowest first. A package imports only from packages of a lower layer, and from itself.
LAYERS = [
    ("_common",),
    ("_archive",),
    ("_engines",),
    ("_checks", "_services", "_transport"),
    ("_container", "_stack"),
    ("_window",),
]
LAYER = {pkg: n for n, pkgs in enumerate(LAYERS) for pkg in pkgs}


def imports(path):
    """(line, package, module, names) of each import of the collection's module_utils in PATH."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            parts = node.module[len(PREFIX):].split(".")
            yield node.lineno, parts[0], ".".join(parts), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                assert not a.name.startswith(PREFIX), "%s:%d: import %s (use from ... import)" % (path, node.lineno, a.name)


def sources(where):
    return sorted(p for p in where.rglob("*.py") if p.name != "__init__.py")


def test_every_package_has_a_layer():
    packages = sorted(p.name for p in MODULE_UTILS.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert packages == sorted(LAYER)
    assert [p.name for p in MODULE_UTILS.glob("*.py")] == [], "module_utils holds packages only"


@pytest.mark.parametrize("path", sources(MODULE_UTILS), ids=lambda p: str(p.relative_to(MODULE_UTILS)))
def test_imports_run_only_downward(path):
    own = path.relative_to(MODULE_UTILS).parts[0]
    wrong = ["%d: %s (layer %d) imports %s (layer %d)" % (line, own, LAYER[own], module, LAYER[pkg])
             for line, pkg, module, _names in imports(path) if pkg != own and LAYER[pkg] >= LAYER[own]]
    assert wrong == []


@pytest.mark.parametrize("path", sources(ROOT / "plugins"), ids=lambda p: str(p.relative_to(ROOT / "plugins")))
def test_no_private_name_crosses_a_package(path):
    rel = path.relative_to(ROOT / "plugins").parts
    own = rel[1] if rel[0] == "module_utils" else None
    wrong = ["%d: %s from %s" % (line, name, module) for line, pkg, module, names in imports(path)
             for name in names if name.startswith("_") and pkg != own]
    assert wrong == []


def test_the_walk_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from %s_window.base import Window\nfrom %s_archive.stream import _private\n" % (PREFIX, PREFIX))
    found = list(imports(bad))
    assert [(pkg, names) for _l, pkg, _m, names in found] == [("_window", ["Window"]), ("_archive", ["_private"])]
    assert LAYER["_window"] > LAYER["_engines"]


@pytest.mark.parametrize("path", sorted(MODULE_UTILS.rglob("*.py")), ids=lambda p: str(p.relative_to(MODULE_UTILS)))
def test_every_file_says_what_it_is_for(path):
    tree = ast.parse(path.read_text())
    assert (ast.get_docstring(tree) or "").strip(), "a docstring that says what the file is for"
    if path.name != "__init__.py":
        declared = [n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "__all__"]
        assert declared, "__all__"
        names = ast.literal_eval(declared[0].value)
        defined = set(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
        defined |= set(t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name))
        assert [n for n in names if n not in defined] == []
