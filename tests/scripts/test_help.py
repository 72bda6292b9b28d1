"""`--help` of the config-driven scripts: usage, variants, the override
syntax, and every config field with its default and meaning."""

import importlib
import os
import re

import pytest

from configs import cli
from configs import help as config_help
from tests.paths import CONFIGS, ROOT

# script -> (its default config file, a field whose meaning --help must show)
SCRIPTS = {
    "train.classifier": ("configs/classifier.py", "train.steps"),
    "train.probes": ("configs/probes.py", "net2vec.epochs"),
    "train.loce": ("configs/loce.py", "loce.steps"),
    "train.hashing": ("configs/duch.py", "model.bits"),
    "eval.concepts": ("configs/probes.py", "tcav.num_random"),
    "eval.loce": ("configs/loce.py", "analysis.k_max"),
    "eval.discover": ("configs/discover.py", "nmf.iters"),
    "eval.explain": ("configs/explain.py", "methods.rise_masks"),
    "eval.gating": ("configs/gating.py", "models.mc_passes"),
    "eval.stability": ("configs/stability.py", "retrieval.runs"),
    "eval.compare": ("configs/compare.py", "net2vec.epochs"),
    "eval.background": ("configs/background.py", "views.train"),
    "eval.hierarchy": ("configs/hierarchy.py", "heads.steps"),
    "eval.adversarial": ("configs/adversarial.py", "attack.steps"),
}
CONFIG_FILES = (
    "classifier", "probes", "loce", "duch", "chnr", "discover", "explain",
    "gating", "stability", "compare", "background", "hierarchy", "adversarial",
    "reproduce"
)  # fmt: skip


def _source_comment(path: str, field: str) -> str:
    """The trailing comment of `c.<field> = ...` in a config file (a plain
    text search, independent of `configs.help`)."""
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    m = re.search(rf"^\s*c\.{re.escape(field)} = .*?  # (.+)$", text, re.M)
    assert m, f"no commented assignment of {field} in {path}"
    return m[1].strip()


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_lists_variants_override_and_fields(script, capsys):
    path, field = SCRIPTS[script]
    module = cli.load_module(os.path.join(ROOT, path))
    with pytest.raises(SystemExit) as done:
        importlib.import_module(script).main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    usage = (
        f"usage: python -m {script} --config {path}[:VARIANT] --workdir DIR "
        "[--config.a.b=VALUE ...]"
    )
    assert out.startswith(usage), out[:200]
    listed = re.search(rf"^variants of {re.escape(path)}: (.*)$", out, re.M)
    assert listed, out
    names = [v.replace(" (default)", "") for v in listed[1].split(", ")]
    assert names == list(module.VARIANTS)
    example = re.search(
        rf"python -m {script} --config \S+ --workdir DIR --config\.(\S+)=(\S+)", out
    )
    assert example, out
    # The example's field exists and its value parses as that field's type.
    cli.apply_override(module.get_config(None), example[1], example[2])
    default = module.get_config(None)
    for part in field.split("."):
        default = default[part]
    line = f"  {field} = {default!r}  # {_source_comment(path, field)}"
    assert line in out.splitlines(), line


def test_meaning_rules_on_a_small_config(tmp_path):
    path = tmp_path / "mini.py"
    path.write_text(
        '''"""A test config.

Flags:
  flag_a   first flag, explained here
           over two lines
  flag_b   second flag
"""
import ml_collections
from configs import duch

FLAGS = ("flag_a", "flag_b")


def part(tiny):
    s = ml_collections.ConfigDict()
    s.width = 3  # width from the helper
    return s


def get_config(variant=None):
    c = ml_collections.ConfigDict()
    c.size = 4  # the size
    # Steps of the run,
    # over two comment lines.
    c.steps = 10
    c.plain = 1
    c.size = 5  # a later why-comment, not the meaning
    c.sub = part(False)
    c.inner = ml_collections.ConfigDict()
    n = ml_collections.ConfigDict()
    n.depth = 2  # depth of n
    c.inner.n = n
    c.flags = ml_collections.ConfigDict()
    for name in FLAGS:
        c.flags[name] = True
    c.hash = duch.get_config("tiny")
    c.hash.seed = 1  # our own seed
    c.table = ml_collections.ConfigDict(dict(a=1, b=2))  # seconds per stage
    return c
'''
    )
    module = cli.load_module(str(path))
    got = config_help.field_meanings(str(path), module.get_config(None))
    assert got["size"] == "the size"
    assert got["steps"] == "Steps of the run, over two comment lines."
    assert got["plain"] is None
    assert got["sub.width"] == "width from the helper"
    assert got["inner.n.depth"] == "depth of n"
    assert got["flags.flag_a"] == "first flag, explained here over two lines"
    assert got["flags.flag_b"] == "second flag"
    assert got["hash.seed"] == "our own seed"
    assert got["hash.model.bits"] == _source_comment("configs/duch.py", "model.bits")
    assert got["table.a"] == "seconds per stage (a)"


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_field_of_every_variant_has_a_meaning(name):
    path = os.path.join(CONFIGS, f"{name}.py")
    module = cli.load_module(path)
    for variant in module.VARIANTS:
        meanings = config_help.field_meanings(path, module.get_config(variant))
        missing = [k for k, v in meanings.items() if not v]
        assert not missing, f"{name}:{variant} fields without a meaning: {missing}"
