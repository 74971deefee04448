"""Repository rules: bertpt's import graph, console scripts that exist, presets and hostfiles that parse.

The import graph is read from the source with `ast` (every module under bertpt/ is found, none is listed
here), counting imports at module level and inside functions alike:
- no circle among bertpt's modules;
- no `from bertpt.x import _private` (nor `x._private`) from another module: what one module uses of another
  is public;
- nothing in bertpt/ or benchmarks/ imports `tests` (the shared reference code is benchmarks/reference/);
- the benchmark (bertpt/bench/) stays outside the library: no module of bertpt outside it imports it;
- bertpt/model.py, and every bertpt module it imports, imports no deepspeed (the model loads without it).
"""

from __future__ import annotations

import ast
import json
import shutil
from importlib import import_module
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
BENCH = "bertpt.bench"
MODEL = "bertpt.model"


def module_name(path: Path, root: Path) -> str:
    """bertpt/data/format.py -> bertpt.data.format; bertpt/bench/__init__.py -> bertpt.bench."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, modules: set[str]) -> list[tuple[str, str, int]]:
    """Every import in the file, at any depth: (imported module, name imported from it or "", line).

    `from pkg import x` counts as importing pkg.x where that is a module, else as importing x from pkg.
    Relative imports are resolved against `name`'s package."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub, "", node.lineno) if sub in modules else (base, alias.name, node.lineno))
    return found


def private_uses(path: Path, modules: set[str]) -> list[tuple[str, int]]:
    """`m._name` where m is a name this file binds to another bertpt module (`from bertpt import m`, `import
    bertpt.m as m`): (m._name, line)."""
    tree = ast.parse(path.read_text(), str(path))
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {alias.asname for alias in node.names if alias.asname and alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            bound |= {alias.asname or alias.name for alias in node.names if f"{node.module}.{alias.name}" in modules}
    return [
        (f"{node.value.id}.{node.attr}", node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in bound
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def internal(target: str) -> bool:
    return target == "bertpt" or target.startswith("bertpt.")


def inside(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the directed graph as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def import_problems(root: Path) -> list[str]:
    """Every breach of the module docstring's rules in the tree at `root` (bertpt/ and benchmarks/), one line each."""
    files = {module_name(p, root): p for p in sorted((root / "bertpt").rglob("*.py"))}
    outside = {module_name(p, root): p for p in sorted((root / "benchmarks").rglob("*.py"))}
    modules = set(files)
    problems, graph = [], {}
    for name, path in {**files, **outside}.items():
        where = path.relative_to(root)
        for target, imported, line in imports(path, name, modules):
            if inside(target, "tests"):
                problems.append(f"{where}:{line} imports {target}: bertpt and benchmarks must not import tests")
            if not internal(target):
                continue
            if imported.startswith("_") and not imported.startswith("__") and target != name:
                problems.append(f"{where}:{line} imports the private {imported} from {target}")
            if name in files:
                graph.setdefault(name, set()).add(target)
                if inside(target, BENCH) and not inside(name, BENCH):
                    problems.append(f"{where}:{line} imports {target}: the library must not import the benchmark")
        for use, line in private_uses(path, modules):
            problems.append(f"{where}:{line} uses the private {use} of another module")
    if cycle := find_cycle(graph):
        problems.append("import circle: " + " -> ".join(cycle))
    reach, todo = set(), [MODEL]  # model.py and all it imports from bertpt, at any depth
    while todo:
        if (m := todo.pop()) not in reach and m in files:
            reach.add(m)
            todo += graph.get(m, ())
    for name in sorted(reach):
        for target, _, line in imports(files[name], name, modules):
            if inside(target, "deepspeed"):
                how = "" if name == MODEL else f" (imported by {MODEL})"
                problems.append(f"{files[name].relative_to(root)}:{line}{how} imports deepspeed")
    return problems


def test_import_graph_follows_the_rules():
    assert len(list((REPO / "bertpt").rglob("*.py"))) >= 20  # the walk found the package
    assert import_problems(REPO) == []


@pytest.mark.parametrize(
    "rel,code,expected",
    [
        (
            "bertpt/errors.py",
            "def _planted():\n    from bertpt import pretrain  # at function level",
            "import circle: ",
        ),
        (
            "bertpt/files.py",
            "from bertpt.errors import _planted",
            "bertpt/files.py:{line} imports the private _planted",
        ),
        (
            "bertpt/files.py",
            "from bertpt import errors\nerrors._planted()",
            "bertpt/files.py:{line2} uses the private errors._planted",
        ),
        ("bertpt/files.py", "import tests.helpers", "bertpt/files.py:{line} imports tests.helpers: bertpt and"),
        ("bertpt/pretrain.py", "from .bench import cli", "bertpt/pretrain.py:{line} imports bertpt.bench.cli: the lib"),
        ("bertpt/model.py", "def _planted():\n    import deepspeed.comm", "bertpt/model.py:{line2} imports deepspeed"),
        (
            "bertpt/errors.py",
            "from deepspeed import comm",
            "bertpt/errors.py:{line} (imported by bertpt.model) imports",
        ),
        ("benchmarks/prepare_throughput.py", "from tests import helpers", "prepare_throughput.py:{line} imports tests"),
    ],
)
def test_import_rules_catch_each_breach(tmp_path, rel, code, expected):
    """The same check on a copy of the tree with one breach planted: it is reported, where it is."""
    for tree in ("bertpt", "benchmarks"):
        shutil.copytree(REPO / tree, tmp_path / tree, ignore=shutil.ignore_patterns("__pycache__"))
    assert import_problems(tmp_path) == []
    path = tmp_path / rel
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, "", "", code, ""]))
    problems = import_problems(tmp_path)
    assert any(expected.format(line=len(lines) + 3, line2=len(lines) + 4) in p for p in problems), problems
    if expected == "import circle: ":
        circle = next(p for p in problems if p.startswith(expected)).removeprefix(expected).split(" -> ")
        assert circle[0] == circle[-1] and {"bertpt.errors", "bertpt.pretrain"} <= set(circle), circle


def test_console_scripts_point_at_functions():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"bertpt-prepare", "bertpt-pretrain", "bertpt-export"} <= set(scripts)
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(import_module(module), func))


def test_presets_are_valid_deepspeed_json():
    names = {p.stem for p in (REPO / "ds_configs").glob("*.json")}
    assert {"zero0", "zero1", "zero2", "zero3", "zero2_fp16", "zero0_lamb", "zero3_offload"} <= names
    for name in names:
        cfg = json.loads((REPO / "ds_configs" / f"{name}.json").read_text())
        assert "train_batch_size" not in cfg, f"{name}: the global batch must follow the world size"
        assert cfg["optimizer"]["type"] in ("AdamW", "Lamb")
        assert cfg["zero_optimization"]["stage"] in (0, 1, 2, 3)


def test_hostfiles_parse_with_deepspeeds_parser():
    from deepspeed.launcher.runner import _parse_hostfile

    def parse(name):
        return dict(_parse_hostfile((REPO / "hostfiles" / name).read_text().splitlines()))

    assert parse("2x8gpu") == {"node1": 8, "node2": 8}
    assert parse("2x1cpu") == {"node1": 1, "node2": 1}  # what tests/cluster launches with


def test_deepspeed_env_example_is_what_deepspeed_reads():
    """DeepSpeed reads every line of a .deepspeed_env as NAME=value (no comments, no blank lines)."""
    lines = (REPO / "hostfiles" / "deepspeed_env.example").read_text().splitlines()
    assert lines and all(line.split("=", 1)[0].isidentifier() and "=" in line for line in lines)
