"""The layout is the architecture: each floor imports only the floors below it, and no module
imports itself back through others. Read from the source (ast), imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("app", "core", "training", "blender", "operators", "panels")
# floor -> floors it must never import
FORBIDDEN = {
    "core": {"app", "training", "blender", "operators", "panels"},
    "blender": {"app", "training"},
    "operators": {"app", "training"},
    "panels": {"app", "training"},
    "training": {"app", "blender", "operators", "panels"},
}


def package_modules() -> dict[str, Path]:
    """Dotted module name (without `talking_head`) -> file, for every module of the package."""
    modules = {"": ROOT / "__init__.py"}
    for floor in FLOORS:
        for path in (ROOT / floor).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that `name` imports (relative imports resolved; `from . import x`
    counted as module x when x is one)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if name else []
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith("talking_head"):
                target = node.module.removeprefix("talking_head").removeprefix(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in modules else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("talking_head."):
                    found.add(alias.name.removeprefix("talking_head."))
    found.discard(name)
    return {m for m in found if m in modules}


def graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_floors_import_only_what_they_may():
    broken = []
    for name, targets in graph().items():
        floor = name.split(".")[0]
        for target in targets:
            if target.split(".")[0] in FORBIDDEN.get(floor, ()):
                broken.append(f"{name} imports {target}")
    assert not broken, "layer rule broken: " + "; ".join(sorted(broken))


def test_no_import_cycles():
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt == "":  # the package root only registers; importing it from below is not a cycle of logic
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_a_broken_rule(tmp_path):
    """The reader resolves relative imports as Python does (so the two tests above can fail)."""
    modules = {"core.a": tmp_path / "a.py", "blender.b": tmp_path / "b.py", "app.cli": tmp_path / "cli.py"}
    (tmp_path / "a.py").write_text("def f():\n    from ..app import cli\n    from ..blender.b import x\n")
    assert imports_of("core.a", tmp_path / "a.py", modules) == {"app.cli", "blender.b"}


# Blender's own Python has numpy and the wheels the manifest ships (plyfile), nothing else of ours.
NOT_IN_BLENDER = ("torch", "scipy", "safetensors", "transformers", "soundfile", "soxr", "librosa", "huggingface_hub", "tqdm", "PIL", "matplotlib")


def test_what_blender_imports_of_core_needs_only_numpy():
    """Every core/ module that the Blender layer imports (directly or through other core modules)
    imports in a Python where the model's packages are missing: only the worker loads them."""
    import subprocess
    import sys

    edges = graph()
    todo = [m for name, targets in edges.items() if name.split(".")[0] in ("blender", "operators", "panels") for m in targets if m.startswith("core.")]
    needed: set[str] = set()
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += [m for m in edges[module] if m.startswith("core.")]
    assert "core.arkit" in needed and "core.style" in needed  # the check sees what Blender uses
    code = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in NOT_IN_BLENDER)
    code += "".join(f"import talking_head.{module}\n" for module in sorted(needed))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"a core module Blender imports needs a package Blender lacks: {done.stderr.strip().splitlines()[-1:]}"
