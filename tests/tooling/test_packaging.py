"""The installed package: the reference ships as fastnn.reference, importing
fastnn has no side effects, no import cycle between fastnn's modules, every
module imports alone, and every package ships in the wheel. (Signature parity
of the backends: contract/test_signatures.py; the backend registry:
model/test_backend_selection.py.)"""

from __future__ import annotations

import subprocess
import sys

from support.contract import CONTRACT

import fastnn


def test_reference_is_installed_as_fastnn_reference():
    import fastnn.reference as ref

    for name in CONTRACT:
        assert callable(getattr(ref, name)), name
        assert getattr(ref, name).__doc__, f"{name} must document its formula"
    assert ref.NAME == "numpy"


def test_import_loads_no_backend_and_reads_no_environment():
    code = (
        "import sys, os; os.environ['FASTNN_BACKEND'] = 'bogus'; import fastnn; "
        "bad = [m for m in ('numba', 'fastnn.reference', "
        "'fastnn._kernels.numba_backend', 'fastnn._kernels.cython_backend', "
        "'matplotlib') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def _fastnn_import_graph() -> dict[str, set[str]]:
    """fastnn's modules and the fastnn modules each imports, at module level
    or inside a function (a lazy import still ties the two modules)."""
    import ast
    from pathlib import Path

    root = Path(fastnn.__file__).resolve().parent
    modules = {}
    for f in root.rglob("*.py"):
        parts = ("fastnn", *f.relative_to(root).with_suffix("").parts)
        modules[".".join(p for p in parts if p != "__init__")] = f
    graph = {m: set() for m in modules}
    for name, f in modules.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "fastnn"
            ):
                targets = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            # A module's own packages are imported before it runs, so
            # ``from fastnn.datasets import sources`` inside the package only
            # names a sibling: no edge to the package itself.
            ancestors = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
            graph[name] |= {
                t for t in targets if t in modules and t != name and t not in ancestors
            }
    return graph


def test_no_import_cycle_between_fastnn_modules():
    """The package __init__ imports its public names; below it, no module
    reaches back to one that imports it (io -> model -> trainer -> io was one)."""
    graph = _fastnn_import_graph()
    graph.pop("fastnn")
    for deps in graph.values():
        deps.discard("fastnn")
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state[nxt] != 1, "import cycle: " + " -> ".join([*path, nxt])
            if state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])


def test_every_module_imports_alone_in_a_fresh_interpreter():
    names = sorted(
        m for m in _fastnn_import_graph() if m.split(".")[-1] not in ("__main__",)
    )
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for m in [k for k in sys.modules if k.startswith('fastnn')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
    )
    subprocess.run([sys.executable, "-c", code, *names], check=True)


def test_every_fastnn_package_ships_in_the_wheel():
    """pyproject lists the packages by hand (``fastnn.reference`` lives in
    ``reference/``): a new subpackage missing from the list would be left out
    of every non-editable install."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # tomllib is Python >= 3.11; the list is one plain TOML array of strings.
    text = (root / "pyproject.toml").read_text()
    array = re.search(r"^packages = \[(.*?)\]", text, re.M | re.S)
    listed = set(re.findall(r'"([^"]+)"', array.group(1)))
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for p in (root / "fastnn").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
