"""The package's structure: imports go one way (errors/env -> model -> generation -> evaluate -> runs -> training ->
verbs -> cli), with no cycle, and every module imports alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlsd_cli"
SPINE = ["errors", "env", "model", "generation", "evaluate", "runs", "training", "sft", "recover", "reason", "cli"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside functions alike."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name.rsplit(".", 1)[0] if path.name != "__init__.py" and "." in name else (name if path.name == "__init__.py" else "")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            candidates = [f"{target}.{alias.name}" if target else alias.name for alias in node.names]
            found = [c for c in candidates if c in modules] or ([target] if target in modules else [])
            if not found and target.split(".")[0] in modules:
                found = [target.split(".")[0]]
            graph[name].update(f for f in found if f != name)
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for nxt in graph[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_the_graph_reads_real_imports():
    graph = import_graph()
    assert {"errors", "chat_format"} <= graph["model"] and "run_record" in graph["model"]
    assert "suites.base" in graph["suites.ifeval"] and "generation" in graph["evaluate"]


def test_no_module_imports_itself_through_others():
    graph = import_graph()
    cycles = sorted(name for name in graph if name in _reachable(graph, name))
    assert not cycles


def test_imports_go_one_way_along_the_spine():
    graph = import_graph()
    backwards = [(low, high) for i, low in enumerate(SPINE) for high in SPINE[i + 1:] if high in _reachable(graph, low)]
    assert not backwards


def test_every_module_imports_alone():
    """In a fresh interpreter, each module imported with no other rlsd module loaded before it."""
    names = sorted(f"rlsd_cli.{n}" if n != "__init__" else "rlsd_cli" for n in import_graph())
    script = (
        "import importlib, json, sys\nfailed = {}\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m == 'rlsd_cli' or m.startswith('rlsd_cli.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception as exc:\n        failed[name] = repr(exc)\n"
        "print(json.dumps(failed))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}
