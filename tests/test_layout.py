"""The layout rules of docs/architecture.md, checked on the source tree.

* every name in a package's `__all__` imports (a stale map fails);
* no import cycle between the library's modules (function-level imports
  count too);
* lower layers never import higher ones, and no family imports another
  family's private (`_`-prefixed) names;
* the library never reads configs (`ml_collections`, `configs`) or imports
  the scripts;
* scripts never import another script's internals: `eval/` may use a trainer
  only through its public `train_and_evaluate`.
"""

import ast
import importlib
import os
import pkgutil

import pytest

import jaxcxai
from tests.paths import ROOT

# Layer of each top-level part of the library (docs/architecture.md).
LAYERS = {
    "jaxcxai.parallel": 0,
    "jaxcxai.distributed": 0,
    "jaxcxai.checkpoint": 0,
    "jaxcxai.atomic_files": 0,
    "jaxcxai.counter_hash": 0,
    "jaxcxai.metric_writers": 0,
    "jaxcxai.hostmem": 0,
    "jaxcxai.checks": 0,
    "jaxcxai.plotting": 0,
    "jaxcxai.models": 1,
    "jaxcxai.data": 1,
    "jaxcxai.metrics": 1,
    "jaxcxai.training": 2,
    "jaxcxai.features": 2,
    "jaxcxai.feature_cache": 2,
    "jaxcxai.feature_batches": 2,
    "jaxcxai.feature_writers": 2,
    "jaxcxai.feature_steps": 2,
    "jaxcxai.attribution": 2,
    "jaxcxai.concepts": 3,
    "jaxcxai.hashing": 3,
    "jaxcxai.uncertainty": 3,
    "jaxcxai.adversarial": 3,
    "jaxcxai.hierarchy": 3,
}


def _modules(top: str) -> dict[str, str]:
    """{dotted module name: path} of every .py file under ROOT/top."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3]
            name = rel.replace(os.sep, ".")
            out[name.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return out


def _imports(path: str, module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import."""
    tree = ast.parse(open(path).read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base])
            out += [(base.strip("."), a.name, node.lineno) for a in node.names]
    return out


def _resolve(target: str, name: str | None, modules) -> str | None:
    """The library module an import refers to (a submodule import by name
    counts as that submodule)."""
    if name and f"{target}.{name}" in modules:
        return f"{target}.{name}"
    return target if target in modules else None


def _layer(module: str) -> int:
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return -1  # the package root


def _family(module: str) -> str:
    """The package a module belongs to (a package is its own family)."""
    if LIB[module].endswith("__init__.py"):
        return module
    return module.rpartition(".")[0]


LIB = _modules("jaxcxai")


def test_every_public_name_imports():
    names = [m.name for m in pkgutil.walk_packages(jaxcxai.__path__, "jaxcxai.")]
    assert "jaxcxai.concepts.probes.tcav" in names
    for module in ["jaxcxai"] + names:
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            assert hasattr(mod, name), f"{module}.__all__ lists {name!r}, not defined"


def test_no_import_cycles_and_layers_point_down():
    graph = {m: set() for m in LIB}
    problems = []
    for module, path in LIB.items():
        for target, name, line in _imports(path, module):
            if target.split(".")[0] in ("ml_collections", "configs", "train", "eval"):
                problems.append(f"{module}:{line} imports {target} (scripts/configs)")
            dep = _resolve(target, name, LIB)
            if dep is None or dep == module:
                continue
            graph[module].add(dep)
            if _layer(dep) > _layer(module) >= 0:
                problems.append(f"{module}:{line} (layer {_layer(module)}) imports "
                                f"{dep} (layer {_layer(dep)})")  # fmt: skip
            private = name and name.startswith("_") and not name.startswith("__")
            if private and _family(dep) != _family(module):
                problems.append(f"{module}:{line} imports private {dep}.{name}")
    assert not problems, "\n".join(problems)

    # Cycles between modules, ignoring a package and its own submodules
    # (an __init__ that re-exports them).
    def edges(m):
        return {d for d in graph[m] if not d.startswith(m + ".")}

    state = {}

    def visit(m, stack):
        state[m] = 1
        for d in edges(m):
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                if not any(a.startswith(b + ".") or b.startswith(a + ".")
                           for a, b in zip(cycle, cycle[1:])):  # fmt: skip
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_scripts_use_only_public_trainer_entry_points():
    scripts = _modules("train") | _modules("eval")
    problems = []
    for module, path in scripts.items():
        tree = ast.parse(open(path).read())
        aliases = {}
        for target, name, line in _imports(path, module):
            if target == "train" and name:  # from train import x [as y]
                aliases[name] = f"train.{name}"
            elif target.startswith("train.") and name:
                if name != "train_and_evaluate" and not module.startswith("train."):
                    problems.append(f"{module}:{line} imports {target}.{name}")
                elif module.startswith("train.") and target != module:
                    problems.append(f"{module}:{line} imports {target}.{name}")
            elif target.startswith("eval.") or (target == "eval" and name):
                dep = f"{target}.{name}" if target == "eval" else target
                allowed = module.startswith(("eval.stages", "eval.benches",
                                             "eval.reproduce", "eval.bench"))  # fmt: skip
                if not allowed or not dep.startswith(("eval.stages", "eval.benches")):
                    problems.append(f"{module}:{line} imports {dep}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "train":
                for a in node.names:
                    aliases[a.asname or a.name] = f"train.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr != "train_and_evaluate"
                and not module.startswith("train.")
            ):
                problems.append(
                    f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
                )
        if module.startswith("train.") and aliases:
            problems.append(f"{module} imports another trainer: {sorted(aliases)}")
    assert not problems, "\n".join(problems)
