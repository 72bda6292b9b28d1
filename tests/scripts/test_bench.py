"""Every registered benchmark names a module that exists and imports only
library names that exist (checked from the source, so the baselines'
packages of the `bench` extra need not be installed)."""

import ast
import importlib
import os

from eval import bench
from tests.paths import ROOT


def test_benchmark_modules_import_existing_library_names():
    missing = []
    for name, (module, _) in bench.BENCHMARKS.items():
        path = os.path.join(ROOT, *module.split(".")) + ".py"
        assert os.path.exists(path), f"{name}: {path} does not exist"
        tree = ast.parse(open(path).read())
        assert any(
            isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body
        ), f"{module} has no run(quick)"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and (node.module.startswith(("jaxcxai", "eval.benches")))
            ):
                lib = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(lib, alias.name):
                        try:  # a submodule imported by name
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ModuleNotFoundError:
                            missing.append(f"{module}: {node.module}.{alias.name}")
    assert missing == []
