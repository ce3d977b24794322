"""The package's shape: no import cycle among its modules, counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (SRC / "stvad").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stvad"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("stvad")}
        graph[name] = deps - {name}
    return graph


def test_no_import_cycle_among_the_package_modules() -> None:
    graph = imports()
    assert {"stvad.engine", "stvad.stream", "stvad.export", "stvad.train"} <= graph.keys()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for dep in sorted(graph.get(module, ())):
            assert dep not in path, "import cycle: " + " -> ".join([*path[path.index(dep) :], dep])
            if dep in graph and dep not in done:
                visit(dep, [*path, dep])
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])


def test_tests_import_no_script_folder() -> None:
    """bench/, experiments/ and tools/ are scripts a person runs, not libraries: no test puts them on
    sys.path or imports from them (a test may run one as a program)."""
    for path in Path(__file__).resolve().parent.glob("*.py"):
        text = path.read_text()
        for folder in ("bench", "experiments", "tools"):
            assert f'/ "{folder}")' not in text or "sys.path" not in text, (
                f"{path.name} puts {folder}/ on sys.path"
            )
        tree = ast.parse(text)
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        scripts = {p.stem for d in ("bench", "experiments", "tools") for p in (SRC.parent / d).glob("*.py")}
        assert not mods & scripts, f"{path.name} imports the script(s) {sorted(mods & scripts)}"


def test_the_layout_map_names_every_package_module() -> None:
    """docs/design.md's map of the code lists every module of the package by its file name."""
    text = (SRC.parent / "docs" / "design.md").read_text()
    for path in (SRC / "stvad").rglob("*.py"):
        if path.name != "__init__.py" and not path.name.startswith("_"):
            assert path.name in text, f"docs/design.md does not mention {path.relative_to(SRC)}"
