"""The house's structure, read from the source: no import cycles, each folder importing only the
layers its docstring names, the spec and graph layers free of everything above them, no core module
importing a backend, and a small top level."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from import_graph import Import, cycles, imports, outside_imports

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "cnnspec"
ROOTS = {"cnnspec": CORE, **{name: ROOT / "backends" / name for name in ("cnnspec_torch", "cnnspec_keras", "cnnspec_onnx")}}
EDGES = imports(ROOTS)
FOLDERS = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").is_file())
TOP_MODULES = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
LAYERS = set(FOLDERS) | set(TOP_MODULES)
# the issue's rule: reading a spec and the checked graph sit below the file, ONNX and run-time layers
LOW_LAYERS = ("spec", "graph")
ABOVE_LOW_LAYERS = ("onnxfile", "files.publish", "files.atomic", "backend", "api", "data", "runner", "training",
                    "quantize", "draw", "commands", "cli")
# the modules at the top, which have no folder docstring: what each may import (the face, the CLI entry
# and __main__ sit above everything)
TOP_MAY_IMPORT = {"errors": set(), "version": set(), "api": {"errors", "graph", "spec", "weights", "backend"}}
FRAMEWORKS = ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "numpy")


def layer(module: str) -> str | None:
    """``cnnspec.graph.ir`` -> ``graph``; ``cnnspec.api`` -> ``api``; the package face -> ``""``."""
    parts = module.split(".")
    if parts[0] != "cnnspec":
        return None
    return parts[1] if len(parts) > 1 else ""


def where(edge: Import) -> str:
    return f"{edge.path.relative_to(ROOT)}:{edge.line}: {edge.source} imports {edge.target}"


def docstring(folder: str) -> str:
    return ast.get_docstring(ast.parse((CORE / folder / "__init__.py").read_text(encoding="utf-8"))) or ""


def may_import(folder: str) -> set[str]:
    """The layers a folder's docstring allows, from its line ``May import: a, b, c.``"""
    found = re.search(r"^May import: (.*?)\.?\s*\Z", docstring(folder), re.M | re.S)
    if not found:
        return set()
    return {name.strip() for name in found.group(1).replace("\n", " ").split(",") if name.strip()}


def test_no_module_imports_one_that_imports_it_back():
    found = cycles(EDGES)
    assert not found, "import cycles (a -> b: a imports b):\n" + "\n".join(" -> ".join(c) for c in found)


def write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    (root / "pkg").mkdir()
    for name, text in files.items():
        (root / "pkg" / name).write_text(text)
    return {"pkg": root / "pkg"}


def test_the_cycle_finder_counts_imports_in_functions_and_not_under_type_checking(tmp_path):
    roots = write_package(tmp_path, {
        "__init__.py": "from .a import f\n",
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from .a import f\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import y\nx = 1\n",
        "d.py": "from .c import x\ny = 2\n",
        "e.py": "import pkg.f\n",
        "f.py": "from .g import *\n",
        "g.py": "from ..pkg import e\n",
    })
    assert sorted(cycles(imports(roots))) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.e", "pkg.f", "pkg.g", "pkg.e"]]


def test_the_cycles_the_issue_found_would_be_found(tmp_path):
    """The two cycles of the flat layout, rebuilt in miniature: the file layer importing the package face,
    and two modules importing each other from inside functions."""
    roots = write_package(tmp_path, {
        "__init__.py": "from .api import load\n__version__ = '1'\n",
        "api.py": "def load():\n    from .writer import write\n",
        "writer.py": "def write():\n    from . import __version__\n",
        "weights.py": "def write():\n    from .layouts import FORMATS\n",
        "layouts.py": "from .weights import write\nFORMATS = ()\n",
    })
    assert sorted(cycles(imports(roots))) == [["pkg", "pkg.api", "pkg.writer", "pkg"],
                                              ["pkg.layouts", "pkg.weights", "pkg.layouts"]]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_folder_says_what_it_does_and_what_it_may_import(folder):
    text = docstring(folder)
    assert text.split("May import:")[0].strip(), f"cnnspec/{folder}/__init__.py: no docstring saying what it does"
    allowed = may_import(folder)
    assert allowed, f"cnnspec/{folder}/__init__.py: its docstring has no line 'May import: a, b.'"
    unknown = sorted(allowed - LAYERS)
    assert not unknown, f"cnnspec/{folder}/__init__.py: 'May import' names {unknown}, which are not layers of cnnspec"


def test_every_folder_imports_only_the_layers_its_docstring_names():
    wrong = [f"{where(e)}; cnnspec/{layer(e.source)}/ may import {', '.join(sorted(may_import(layer(e.source))))}"
             for e in EDGES
             if layer(e.source) in FOLDERS and layer(e.target) is not None and layer(e.target) != layer(e.source)
             and layer(e.target) not in may_import(layer(e.source))]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_top_level_modules_import_only_what_they_may():
    wrong = [where(e) for e in EDGES if layer(e.source) in TOP_MAY_IMPORT and layer(e.target) is not None
             and layer(e.target) != layer(e.source) and layer(e.target) not in TOP_MAY_IMPORT[layer(e.source)]]
    assert not wrong, "\n".join(wrong)


def test_the_declared_layers_form_an_order():
    """No chain of folders allowed to import each other comes back to its start: the layers stack,
    whatever the modules do today."""
    allowed = {**{folder: may_import(folder) for folder in FOLDERS}, **TOP_MAY_IMPORT}
    declared = [Import(a, b, CORE, 0) for a in allowed for b in allowed[a]]
    assert not cycles(declared), f"layers allowed to import each other: {cycles(declared)}"


def test_the_spec_and_graph_layers_import_nothing_above_them():
    wrong = [where(e) for e in EDGES if layer(e.source) in LOW_LAYERS
             and any(e.target == f"cnnspec.{above}" or e.target.startswith(f"cnnspec.{above}.")
                     for above in ABOVE_LOW_LAYERS)]
    assert not wrong, "the spec and graph layers reach up:\n" + "\n".join(wrong)


def test_the_spec_and_graph_layers_import_no_framework():
    wrong = [where(e) for e in outside_imports(ROOTS) if layer(e.source) in LOW_LAYERS and e.target in FRAMEWORKS]
    assert not wrong, "\n".join(wrong)


def test_no_core_module_imports_a_backend():
    backend_packages = set(ROOTS) - {"cnnspec"}
    wrong = [where(e) for e in EDGES if layer(e.source) is not None and e.target.split(".")[0] in backend_packages]
    assert not wrong, "the core imports a backend:\n" + "\n".join(wrong)


def test_the_top_level_holds_at_most_ten_modules():
    modules = sorted(p.name for p in CORE.glob("*.py"))
    assert len(modules) <= 10, f"cnnspec/ holds {len(modules)} modules: {', '.join(modules)}"

