"""The package's shape: imports run one way between the wings, no cycle, small modules.

Walks every `import` in tuner/ with ast (module level and inside functions alike), so a lazy
import against the direction fails too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tuner"

# cli -> orchestrate -> study -> trial -> config -> bottom; outputs read the study; the demo builds
# a block. Each wing lists what it may import besides itself.
BOTTOM = {"errors", "files", "redact", "__init__"}
ALLOWED = {
    "cli": {"orchestrate", "outputs", "study", "trial", "config", "demo"} | BOTTOM,
    "orchestrate": {"study", "trial", "config"} | BOTTOM,
    "outputs": {"study", "trial", "config"} | BOTTOM,
    "study": {"trial", "config"} | BOTTOM,
    "trial": {"config"} | BOTTOM,
    "config": set(BOTTOM),
    "demo": {"config"} | BOTTOM,
    "errors": set(),
    "files": set(),
    "redact": set(),
    "__init__": set(),
}
MAX_LINES = 300


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """tuner modules that `path` imports (a `from pkg import name` that names a module counts as it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tuner"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tuner":
            assert node.level == 0, f"{path}: relative import; use absolute tuner.* imports"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_run_one_way():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        for target in _imports(path, modules):
            source, dest = _wing(name), _wing(target)
            if dest != source and dest not in ALLOWED[source]:
                wrong.append(f"{name} imports {target} ({source} may import {sorted(ALLOWED[source])})")
    assert not wrong, "imports against the direction:\n" + "\n".join(wrong)


def test_no_import_cycle():
    modules = _modules()
    graph = {name: {t for t in _imports(path, modules) if t in modules and t != name} for name, path in modules.items()}
    # A package's __init__ may import its own submodules (tuner.cli registers its commands); a
    # submodule importing `tuner.cli.x` runs that __init__ first, which is not a cycle of ours.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name)


def test_every_wing_says_what_it_owns_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert doc, f"{init}: no docstring"
        if init.parent.name != "demo":
            assert "May import" in doc, f"{init}: the docstring does not say what the wing may import"


def test_modules_are_small_with_a_job_line_and_no_private_module_at_the_root():
    for path in _modules().values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path}: {lines} lines; split it by job (limit {MAX_LINES})"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{path}: no docstring saying the module's job"
    assert not [p.name for p in PACKAGE.glob("_*.py") if p.name != "__init__.py"]


def test_the_test_sees_a_violation(tmp_path, monkeypatch):
    """The walker itself: a config module importing the study is caught."""
    fake = tmp_path / "tuner"
    (fake / "config").mkdir(parents=True)
    (fake / "study").mkdir()
    for init in ("__init__.py", "config/__init__.py", "study/__init__.py"):
        (fake / init).write_text('"""x."""\n')
    (fake / "config" / "block.py").write_text('"""x."""\ndef f():\n    from tuner.study import store\n')
    (fake / "study" / "store.py").write_text('"""x."""\nfrom tuner.config import block\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match=r"tuner\.config\.block imports tuner\.study\.store"):
        test_imports_run_one_way()
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycle()
