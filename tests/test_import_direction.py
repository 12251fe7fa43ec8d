"""Which way the imports run: the CLI (`launcher`) and the agent (`srt_agent.agent`) are siblings
over the shared core (the rest of `srt_agent`), read from the source with `ast`:

- the shared core imports neither `launcher` nor `srt_agent.agent`;
- `launcher` never imports `srt_agent.agent` (it starts the agent as a subprocess,
  `python -m srt_agent RUN_DIR`: a module name on a command line, not an import);
- no two modules import each other, directly or round a longer circle.

Every import statement counts, at module top or inside functions; an import under
`if TYPE_CHECKING:` counts for the direction (the core does not even name the agent's types), not
for circles (it never runs: a type-only back-reference, as engines/ to plan.py, is no cycle).
`srt_agent/__main__.py` (`python -m srt_agent`) is the agent's entry point, so it belongs to the
agent. The checker is tried on small synthetic trees first, so it is known to fail.

And where the imports stand: project imports (`srt_agent`, `launcher`, relative) sit at module top
(under `if TYPE_CHECKING:` or a module-level `try` counts as top). One inside a function is allowed
only in the modules of LAZY_FOR_CLI_START_UP, and there only with a comment on its line saying it
serves CLI start-up (`srtctl --help` and `srtctl dry-run` import what they need, measured in
benchmarks/dry_run_speed.py). Third-party imports may be lazy anywhere (plotly, matplotlib, httpx).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srt_agent", "launcher")
AGENT = "srt_agent.agent"
AGENT_ENTRY = "srt_agent.__main__"
CLI = "launcher"

# Known exceptions: none are left, and none may be added (move the shared piece below both instead).
ALLOWED_EDGES: set[tuple[str, str]] = set()
ALLOWED_CYCLES: list[set[str]] = []

# Modules whose function-level project imports serve `srtctl` start-up; each such import says so
# on its line ("CLI start-up"). Nothing else may import inside a function.
LAZY_FOR_CLI_START_UP = {
    "launcher.cli",  # a subcommand's module only when that subcommand runs (importlib), srt_agent after argv
    "launcher.dry_run",  # a sweep in one allocation: the submit machinery only for that
    "launcher.run_lookup",  # the cluster file's pydantic models only when no --logs-dir is given
    "launcher.prepare",  # the incumbent converter only for a v1 recipe
    "launcher.sweep_cmd",  # the sweep expander only for a sweep or --set/--unset, the converter only for a v1 recipe
    "srt_agent.incumbent",  # the converter when first named: recognising a job file needs only its sections
    "srt_agent.evals.config",  # the eval tasks' defaults only for a job with an eval
    "srt_agent.evals.check",  # the dataset reader only for a job that names a dataset
    "srt_agent.resolved",  # the trace file's reader only for a trace-replay job
}
# Modules whose lazy imports are still to be hoisted: empty, and it stays empty.
LAZY_PENDING: set[str] = set()
CLI_START_UP_NOTE = "CLI start-up"


# ---------------------------------------------------------------------------- the checker


def module_files(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """module name -> file, for every .py file of the packages under root."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module of the tree that importing `name` runs last: name itself or its longest prefix."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path], *, runtime: bool = False) -> set[str]:
    """The modules of the tree that `module` imports (`from pkg import sub` names pkg.sub);
    runtime: without the imports under `if TYPE_CHECKING:`."""
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_only(tree) if runtime else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            stem = ".".join([*base, *([node.module] if node.module else [])])
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg itself
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        else:
            continue
        for t in targets:
            hit = _resolve(t, modules)
            if hit is not None and hit != module:
                found.add(hit)
    return found


def _top_level(tree: ast.Module) -> set[int]:
    """ids of the statements that run at import: module body, and inside its if/try blocks."""
    out: set[int] = set()
    todo = list(tree.body)
    while todo:
        stmt = todo.pop()
        out.add(id(stmt))
        if isinstance(stmt, (ast.If, ast.Try)):
            todo += [*stmt.body, *stmt.orelse, *getattr(stmt, "finalbody", [])]
            todo += [s for h in getattr(stmt, "handlers", []) for s in h.body]
    return out


def function_level_imports(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, list[tuple[int, str]]]:
    """module -> [(line, source line)] of its project imports inside a function or class body."""
    out: dict[str, list[tuple[int, str]]] = {}
    for module, path in module_files(root, packages).items():
        text = path.read_text()
        tree = ast.parse(text, filename=str(path))
        top = _top_level(tree)
        lines = text.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in top:
                continue
            if isinstance(node, ast.ImportFrom):
                project = bool(node.level) or (node.module or "").split(".")[0] in packages
            else:
                project = any(a.name.split(".")[0] in packages for a in node.names)
            if project:
                out.setdefault(module, []).append((node.lineno, lines[node.lineno - 1].strip()))
    return out


def misplaced_imports(found: dict[str, list[tuple[int, str]]], lazy_ok: Iterable[str] = (),
                      pending: Iterable[str] = ()) -> list[str]:
    """Function-level project imports outside lazy_ok (or there without the CLI start-up note)."""
    out = []
    for module, hits in sorted(found.items()):
        if module in pending:
            continue
        for line, src in hits:
            if module not in lazy_ok:
                out.append(f"{module}:{line}: {src}  (hoist it to the module top)")
            elif CLI_START_UP_NOTE not in src.partition("#")[2]:
                out.append(f"{module}:{line}: {src}  (say on its line that it serves {CLI_START_UP_NOTE})")
    return out


def import_graph(root: Path, packages: Iterable[str] = PACKAGES, *, runtime: bool = False) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {m: imports_of(m, p, modules, runtime=runtime) for m, p in modules.items()}


def half(module: str) -> str:
    """"agent", "cli" or "core"."""
    if module == AGENT or module.startswith(AGENT + ".") or module == AGENT_ENTRY:
        return "agent"
    if module == CLI or module.startswith(CLI + "."):
        return "cli"
    return "core"


def wrong_way(graph: dict[str, set[str]], allowed: set[tuple[str, str]] = frozenset()) -> list[str]:
    """Every import that runs against the layering, as `importer -> imported (rule)`."""
    rules = {("core", "cli"): "the shared core imports the CLI", ("core", "agent"): "the shared core imports the agent",
             ("cli", "agent"): "the CLI imports the agent", ("agent", "cli"): "the agent imports the CLI"}
    out = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            rule = rules.get((half(src), half(dst)))
            if rule and (src, dst) not in allowed:
                out.append(f"{src} -> {dst} ({rule})")
    return out


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


def unexpected_cycles(graph: dict[str, set[str]], allowed: list[set[str]] = ()) -> list[str]:
    return [" <-> ".join(sorted(c)) + "  (modules that import each other, directly or round a circle)"
            for c in cycles(graph) if c not in allowed]


# ---------------------------------------------------------------------------- the checker, tried


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CLEAN = {
    "srt_agent/__init__.py": "",
    "srt_agent/__main__.py": "from .agent.main import main\n",
    "srt_agent/rundir.py": "from .atomic import write\n",
    "srt_agent/atomic.py": "import os\n",
    "srt_agent/agent/__init__.py": "",
    "srt_agent/agent/main.py": "from ..rundir import log_tail\nfrom . import status\n",
    "srt_agent/agent/status.py": "from srt_agent import atomic\n",
    "launcher/__init__.py": "",
    "launcher/cli.py": "import importlib\n\ndef main():\n    from launcher import status_cmd\n",
    "launcher/status_cmd.py": ("import subprocess\nfrom srt_agent.rundir import log_tail\n"
                               "subprocess.run(['python', '-m', 'srt_agent.agent.main'])\n"),
}


def test_the_checker_passes_a_clean_tree(tmp_path):
    graph = import_graph(write_tree(tmp_path, CLEAN))
    assert import_graph(tmp_path, runtime=True) == graph
    assert graph["srt_agent.agent.main"] == {"srt_agent.rundir", "srt_agent.agent.status"}
    assert graph["launcher.cli"] == {"launcher.status_cmd"}  # a lazy import counts
    assert graph["srt_agent.agent.status"] == {"srt_agent.atomic"}  # `from pkg import module`
    assert graph["srt_agent.__main__"] == {"srt_agent.agent.main"}
    assert wrong_way(graph) == [] and unexpected_cycles(graph) == []


@pytest.mark.parametrize("rel,text,expected", [
    ("srt_agent/rundir.py", "def f():\n    from launcher.paths import x\n",
     "srt_agent.rundir -> launcher (the shared core imports the CLI)"),
    ("srt_agent/rundir.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .agent import status\n",
     "srt_agent.rundir -> srt_agent.agent.status (the shared core imports the agent)"),
    ("launcher/status_cmd.py", "import srt_agent.agent.main as m\n",
     "launcher.status_cmd -> srt_agent.agent.main (the CLI imports the agent)"),
    ("srt_agent/agent/main.py", "from launcher.cli import main\n",
     "srt_agent.agent.main -> launcher.cli (the agent imports the CLI)"),
])
def test_the_checker_finds_an_import_the_wrong_way(tmp_path, rel, text, expected):
    graph = import_graph(write_tree(tmp_path, {**CLEAN, rel: text}))
    assert wrong_way(graph) == [expected]
    assert wrong_way(graph, allowed={tuple(expected.split(" (")[0].split(" -> "))}) == []


def test_the_checker_finds_a_circle_of_three(tmp_path):
    tree = {**CLEAN, "launcher/a.py": "from . import b\n", "launcher/b.py": "from .c import x\n",
            "launcher/c.py": "def f():\n    import launcher.a\n"}
    graph = import_graph(write_tree(tmp_path, tree))
    assert unexpected_cycles(graph) == ["launcher.a <-> launcher.b <-> launcher.c"
                                        "  (modules that import each other, directly or round a circle)"]
    assert unexpected_cycles(graph, [{"launcher.a", "launcher.b", "launcher.c"}]) == []
    # a known circle that grows is a new one
    tree["launcher/c.py"] += "from . import d\n"
    tree["launcher/d.py"] = "from . import a\n"
    grown = import_graph(write_tree(tmp_path, tree))
    assert len(unexpected_cycles(grown, [{"launcher.a", "launcher.b", "launcher.c"}])) == 1


def test_a_type_only_back_reference_is_no_circle_but_still_a_direction(tmp_path):
    tree = {**CLEAN, "srt_agent/plan.py": "from .engine import make\n",
            "srt_agent/engine.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                    "    from .plan import Plan\n    from .agent.status import S\n")}
    write_tree(tmp_path, tree)
    assert unexpected_cycles(import_graph(tmp_path)) != []
    assert unexpected_cycles(import_graph(tmp_path, runtime=True)) == []
    assert wrong_way(import_graph(tmp_path)) == [
        "srt_agent.engine -> srt_agent.agent.status (the shared core imports the agent)"]


LAZY_TREE = {
    "srt_agent/__init__.py": "",
    "srt_agent/report.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .plan import Plan\n"
                            "try:\n    from .fast import x\nexcept ImportError:\n    x = None\n\n"
                            "def page():\n    import plotly\n"),
    "srt_agent/plan.py": "class P:\n    def f(self):\n        from . import report\n",
    "launcher/__init__.py": "",
    "launcher/cli.py": ("def main():\n    from srt_agent import report  # lazy, CLI start-up\n"
                        "    import launcher.dry_run\n"),
}


def test_the_lazy_import_checker_finds_function_level_project_imports(tmp_path):
    found = function_level_imports(write_tree(tmp_path, LAZY_TREE))
    # TYPE_CHECKING, a module-level try and a third-party lazy import (plotly) are not found
    assert found == {"srt_agent.plan": [(3, "from . import report")],
                     "launcher.cli": [(2, "from srt_agent import report  # lazy, CLI start-up"),
                                      (3, "import launcher.dry_run")]}
    assert misplaced_imports(found, lazy_ok={"launcher.cli"}) == [
        "launcher.cli:3: import launcher.dry_run  (say on its line that it serves CLI start-up)",
        "srt_agent.plan:3: from . import report  (hoist it to the module top)"]
    assert misplaced_imports(found) == [
        "launcher.cli:2: from srt_agent import report  # lazy, CLI start-up  (hoist it to the module top)",
        "launcher.cli:3: import launcher.dry_run  (hoist it to the module top)",
        "srt_agent.plan:3: from . import report  (hoist it to the module top)"]
    assert misplaced_imports(found, pending={"launcher.cli", "srt_agent.plan"}) == []


# ---------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT)


@pytest.fixture(scope="module")
def runtime_graph() -> dict[str, set[str]]:
    return import_graph(ROOT, runtime=True)


def test_the_project_is_read(graph):
    assert {"launcher.cli", "srt_agent.rundir", "srt_agent.agent.main", "srt_agent.plan"} <= set(graph)
    assert "srt_agent.rundir" in graph["launcher.run_lookup"]


def test_no_import_runs_the_wrong_way(graph):
    found = wrong_way(graph, ALLOWED_EDGES)
    assert not found, ("imports against the layering (launcher and srt_agent.agent over the shared core; "
                       "move what both need into the core, e.g. srt_agent/rundir.py):\n" + "\n".join(found))


def test_no_import_cycles(runtime_graph):
    found = unexpected_cycles(runtime_graph, ALLOWED_CYCLES)
    assert not found, "import cycles (move what both need into a third module below them):\n" + "\n".join(found)


def test_project_imports_are_at_module_top():
    found = misplaced_imports(function_level_imports(ROOT), LAZY_FOR_CLI_START_UP, LAZY_PENDING)
    assert not found, ("project imports inside functions (keep them at the module top; a lazy one only "
                       "where it serves srtctl start-up, listed in LAZY_FOR_CLI_START_UP and saying so "
                       "on its line):\n" + "\n".join(found))


def test_the_lazy_lists_name_modules_that_exist_and_still_import_lazily():
    found = function_level_imports(ROOT)
    stale = sorted(m for m in LAZY_FOR_CLI_START_UP | LAZY_PENDING if m not in found)
    assert not stale, f"no function-level project imports left in {stale}: take them off the list"
