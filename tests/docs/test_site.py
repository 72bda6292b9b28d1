"""The documentation site's hook: API coverage, tutorial cells, records.

The strict build itself (`make docs`, part of `make test`) is the test of
the links, the API anchors and the tutorials; these tests check the hook's
parts against independent derivations.
"""

import importlib
import importlib.util
import json
import os
import pathlib
import pkgutil

import pytest

import jaxcxai
from tests import paths

ROOT = pathlib.Path(paths.ROOT)

pytest.importorskip("mkdocs")


def _hook():
    spec = importlib.util.spec_from_file_location(
        "docs_pages", ROOT / "docs/hooks/pages.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_public_unit_has_an_api_page():
    """The hook's static reading of `__all__` equals the imported packages'."""
    units = _hook().public_units()
    want = {"jaxcxai": list(jaxcxai.__all__)}
    for info in pkgutil.walk_packages(jaxcxai.__path__, "jaxcxai."):
        mod = importlib.import_module(info.name)
        names = getattr(mod, "__all__", None)
        if names and (info.ispkg or info.name.count(".") == 1):
            want[info.name] = list(names)
    assert units == want


def test_api_page_lists_every_name_of_a_unit():
    hook = _hook()
    page = hook._api_page(
        "jaxcxai.concepts.background",
        hook.public_units()["jaxcxai.concepts.background"],
    )
    members = [
        ln.strip()[2:] for ln in page.splitlines() if ln.startswith("        - ")
    ]
    from jaxcxai.concepts import background

    assert members == [n for n in background.__all__ if not n.startswith("__")]
    assert "::: jaxcxai.concepts.background" in page
    # Sub-packages with pages of their own are linked, not rendered twice.
    top = hook._api_page("jaxcxai", hook.public_units()["jaxcxai"])
    assert "[`jaxcxai.training`](jaxcxai.training.md)" in top
    assert "- training" not in top and "- __version__" not in top


def test_percent_cells():
    src = '"""Doc."""\n\n# %% [markdown]\n# # Title\n#\n# Text `x`.\n\n# %%\nx = 1\n\n\n# %%\nprint(x)\n'
    cells = _hook().split_cells(src)
    assert cells == [("code", '"""Doc."""'), ("markdown", "# Title\n\nText `x`."),
                     ("code", "x = 1"), ("code", "print(x)")]  # fmt: skip


def test_tutorial_page_has_outputs_and_figures(tmp_path):
    script = tmp_path / "t.py"
    script.write_text(
        "# %% [markdown]\n# # T\n\n# %%\nimport matplotlib.pyplot as plt\n"
        "print('six', 2 * 3)\nplt.plot([1, 2])\nplt.title('t')\n"
    )
    page = _hook().run_tutorial(script)
    assert "```text\nsix 6\n```" in page and "data:image/png;base64," in page
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n")
    with pytest.raises(Exception, match=r"bad.py, cell 1 failed"):
        _hook().run_tutorial(bad)


def test_every_tutorial_is_in_the_nav_and_every_record_in_the_table():
    text = (ROOT / "mkdocs.yml").read_text()
    for path in (ROOT / "docs/tutorials").glob("*.py"):
        assert f"tutorials/{path.stem}.md" in text, path.name
    records = sorted((ROOT / "docs/benchmarks").glob("*/*.json"))
    table = _hook().benchmark_table()
    assert len(table.splitlines()) == 2 + len(records)
    for path in records:
        assert f"`{json.loads(path.read_text())['name']}`" in table


def test_tutorial_runs_in_its_own_process_and_failures_are_named(tmp_path):
    hook = _hook()
    good = tmp_path / "good.py"
    here = os.getpid()
    good.write_text(f"# %%\nimport os\nprint('pid differs', os.getpid() != {here})\n")
    assert "```text\npid differs True\n```" in hook.tutorial_page(good)
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n")
    with pytest.raises(Exception, match=r"(?s)tutorial bad.py failed.*cell 1.*boom"):
        hook.tutorial_page(bad)
