"""The layer rules of ``docs/architecture.md``, checked on labkit's own source with ``ast``.

Every import counts: module-level, inside functions, under ``TYPE_CHECKING``, relative or
absolute, and a name taken from a package's lazy exports counts as an import of the
module that defines it. The checker is tested on small synthetic packages first, so a
checker that finds nothing cannot pass for a clean tree.
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

#: Third-party libraries the pure layers may not import (``docs/architecture.md``, "The rules").
HEAVY = ("PIL", "matplotlib", "torch", "torchvision", "timm", "segment_anything", "sqlalchemy", "ipywidgets",
         "papermill", "nbconvert", "anywidget", "onnxruntime")
PURE = {"labkit.quality": (*HEAVY, "cv2"), "labkit.geometry": HEAVY}  # geometry traces contours with OpenCV
#: The only modules allowed at the top of the package: the face.
FACE = {"labkit", "labkit._version"}


# ------------------------------------------------------------------ the checker --
def read_layers(doc: Path) -> list[list[str]]:
    """The ```layers block of the architecture document: one list of packages per layer, top first."""
    m = re.search(r"```layers\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    if m is None:
        raise AssertionError(f"{doc} has no ```layers block")
    return [line.split() for line in m.group(1).splitlines() if line.strip()]


def module_files(package_dir: Path) -> dict[str, Path]:
    """``dotted module name -> file`` for every ``.py`` under ``package_dir`` (a package)."""
    base = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def lazy_map(tree: ast.Module) -> dict[str, str]:
    """A package ``__init__``'s lazy exports: ``name -> module`` from its ``_MODULES``/``_LAZY`` literals."""
    out: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Dict):
            continue
        names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        for key, value in zip(node.value.keys, node.value.values):
            if not isinstance(key, ast.Constant):
                continue
            if "_MODULES" in names and isinstance(value, ast.List):  # module -> [names]
                out.update({e.value: key.value for e in value.elts if isinstance(e, ast.Constant)})
            elif "_LAZY" in names and isinstance(value, ast.Constant):  # name -> module
                out[key.value] = value.value
    return out


def imports(modules: dict[str, Path], top: str) -> Iterator[tuple[str, int, str]]:
    """``(importer, line, imported module)`` for every import of a ``top`` module, at any depth."""
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in modules.items()}
    lazy = {m: lazy_map(t) for m, t in trees.items() if modules[m].name == "__init__.py"}
    for mod, tree in trees.items():
        package = mod if modules[mod].name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == top or alias.name.startswith(top + "."):
                        yield mod, node.lineno, _existing(alias.name, modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base != top and not base.startswith(top + "."):
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules:
                        yield mod, node.lineno, full
                    elif alias.name in lazy.get(base, {}):
                        yield mod, node.lineno, lazy[base][alias.name]
                    else:
                        yield mod, node.lineno, _existing(base, modules)


def _existing(name: str, modules: dict[str, str | Path]) -> str:
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def area_of(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """``(layer index, package)`` of the longest declared package that contains ``module``."""
    best = None
    for i, layer in enumerate(layers):
        for pkg in layer:
            hit = module == pkg or (module.startswith(pkg + ".") and pkg.count(".") > 0)
            if hit and (best is None or len(pkg) > len(best[1])):
                best = (i, pkg)
    return best


def violations(package_dir: Path, layers: list[list[str]]) -> list[str]:
    """Every upward or sideways import, undeclared module and cycle, as readable lines."""
    top = package_dir.name
    modules = module_files(package_dir)
    edges: dict[str, set[str]] = defaultdict(set)
    problems = []
    for mod, line, target in imports(modules, top):
        if target == mod:
            continue
        edges[mod].add(target)
        src, dst = area_of(mod, layers), area_of(target, layers)
        where = f"{modules[mod].relative_to(package_dir.parent)}:{line}"
        if src is None or dst is None:
            problems.append(f"{where}: {mod if src is None else target} is in no declared layer")
        elif src[1] != dst[1] and dst[0] <= src[0]:
            how = "sideways" if dst[0] == src[0] else "upward"
            problems.append(f"{where}: {mod} imports {target} ({how}: {src[1]} -> {dst[1]})")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(edges)]
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(edges):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def private_imports(package_dir: Path) -> list[str]:
    """``from X import _name`` where ``_name`` is a private name of another module of the package."""
    top = package_dir.name
    modules = module_files(package_dir)
    out = []
    for path in modules.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ours = node.level or (node.module or "").split(".")[0] == top if isinstance(node, ast.ImportFrom) else False
            if ours:
                for alias in node.names:
                    name = alias.name
                    if name.startswith("_") and not name.startswith("__") and f"{node.module}.{name}" not in modules \
                            and not (node.level and node.module is None):
                        out.append(f"{path.relative_to(package_dir.parent)}:{node.lineno}: imports private {name}")
    return out


def third_party(package_dir: Path, prefixes: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """Imports of ``forbidden`` top-level libraries by modules under ``prefixes``, at any depth."""
    out = []
    for mod, path in module_files(package_dir).items():
        if not any(mod == p or mod.startswith(p + ".") for p in prefixes):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            out += [f"{path.relative_to(package_dir.parent)}:{node.lineno}: imports {n}"
                    for n in names if n.split(".")[0] in forbidden]
    return out


# ------------------------------------------------------------- labkit itself --
def test_the_document_declares_every_package():
    layers = read_layers(DOC)
    declared = {p for layer in layers for p in layer}
    packages = {m for m, p in module_files(ROOT / "labkit").items() if p.name == "__init__.py" and m.count(".") == 1}
    assert packages - declared == set(), "packages missing from the ```layers block of docs/architecture.md"
    assert declared - packages - FACE == set(), "declared packages that do not exist"


def test_no_upward_or_sideways_import_and_no_cycle():
    problems = violations(ROOT / "labkit", read_layers(DOC))
    assert problems == [], "\n".join(problems)


def test_the_top_level_holds_only_the_face():
    top = {m for m, p in module_files(ROOT / "labkit").items() if m.count(".") == 1 and p.name != "__init__.py"}
    assert top <= FACE, f"modules at the top of labkit besides the package face: {sorted(top - FACE)}"


def test_no_private_name_is_imported_from_another_module():
    problems = private_imports(ROOT / "labkit")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("package", sorted(PURE))
def test_the_pure_core_imports_no_image_plotting_or_model_library(package):
    problems = third_party(ROOT / "labkit", (package,), PURE[package])
    assert problems == [], "\n".join(problems)


# --------------------------------------------------- the checker on fixtures --
LAYERS = [["pkg"], ["pkg.top"], ["pkg.mid"], ["pkg.a", "pkg.b"], ["pkg._low"]]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"pkg/__init__.py": "", "pkg/top/__init__.py": "", "pkg/mid/__init__.py": "",
                      "pkg/a/__init__.py": "", "pkg/b/__init__.py": "", "pkg/_low/__init__.py": "",
                      **files}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path / "pkg"


def test_checker_accepts_downward_imports(tmp_path):
    pkg = _tree(tmp_path, {"pkg/top/x.py": "from pkg.mid import y\nimport pkg._low.z\n",
                           "pkg/mid/y.py": "from ..a import w\nfrom . import v\n", "pkg/mid/v.py": "",
                           "pkg/a/w.py": "from pkg._low.z import f\n", "pkg/_low/z.py": "def f(): pass\n"})
    assert violations(pkg, LAYERS) == []


def test_checker_finds_an_upward_import_inside_a_function(tmp_path):
    pkg = _tree(tmp_path, {"pkg/mid/y.py": "def f():\n    from pkg.top.x import g\n", "pkg/top/x.py": ""})
    assert violations(pkg, LAYERS) == ["pkg/mid/y.py:2: pkg.mid.y imports pkg.top.x (upward: pkg.mid -> pkg.top)"]


def test_checker_finds_a_type_checking_import_sideways(tmp_path):
    pkg = _tree(tmp_path, {"pkg/a/w.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                         "    from ..b.u import U\n", "pkg/b/u.py": "class U: pass\n"})
    assert violations(pkg, LAYERS) == ["pkg/a/w.py:3: pkg.a.w imports pkg.b.u (sideways: pkg.a -> pkg.b)"]


def test_checker_finds_a_cycle_within_one_package(tmp_path):
    pkg = _tree(tmp_path, {"pkg/mid/y.py": "from pkg.mid import v\n",
                           "pkg/mid/v.py": "def f():\n    from .y import g\n"})
    assert violations(pkg, LAYERS) == ["import cycle: pkg.mid.v -> pkg.mid.y"]


def test_checker_follows_lazy_exports(tmp_path):
    pkg = _tree(tmp_path, {"pkg/a/__init__.py": '_LAZY = {"Thing": "pkg.a.thing"}\n',
                           "pkg/a/thing.py": "from pkg.mid.v import x\n", "pkg/mid/v.py": "x = 1\n",
                           "pkg/_low/z.py": "from pkg.a import Thing\n"})
    assert violations(pkg, LAYERS) == [
        "pkg/_low/z.py:1: pkg._low.z imports pkg.a.thing (upward: pkg._low -> pkg.a)",
        "pkg/a/thing.py:1: pkg.a.thing imports pkg.mid.v (upward: pkg.a -> pkg.mid)"]


def test_checker_finds_private_imports_and_forbidden_libraries(tmp_path):
    pkg = _tree(tmp_path, {"pkg/a/w.py": "from pkg.b.u import _helper\nfrom pkg.b import _mod\n"
                                         "def f():\n    from PIL import Image\n    from os import _exit\n",
                           "pkg/b/u.py": "def _helper(): pass\n", "pkg/b/_mod.py": ""})
    assert private_imports(pkg) == ["pkg/a/w.py:1: imports private _helper"]
    assert third_party(pkg, ("pkg.a",), ("PIL",)) == ["pkg/a/w.py:4: imports PIL"]


@pytest.mark.parametrize("text", ["```layers\n```\n", "no block here\n"])
def test_checker_needs_the_layer_block(tmp_path, text):
    doc = tmp_path / "a.md"
    doc.write_text(text)
    if "```layers" in text:
        assert read_layers(doc) == []
    else:
        with pytest.raises(AssertionError, match="no ```layers block"):
            read_layers(doc)
