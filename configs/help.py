"""`--help` of the config-driven scripts: variants, override syntax, fields.

A field's meaning is read from its config file's source: the trailing
comment of the line that assigns it (`c.data.num_train = 600  # ...`), else
the comment lines directly above that line, else (flags set in a loop) a
line of the module docstring that starts with the field's name. A section
built by another function or config file (`c.data = data_config(...)`,
`c.probes = probes.get_config(...)`) takes that source's meanings under its
prefix, and the caller's own comment wins over an imported one. Within one
file the first commented assignment wins (later ones are usually a
variant's "why"). Entries of a section built from a dict
(`ConfigDict(TABLE[variant])`) share the section's meaning.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import tokenize

from configs.validate import flatten

__all__ = ["default_variant", "field_meanings", "help_text"]

CONFIGS_DIR = os.path.dirname(os.path.abspath(__file__))
_PRAGMA = re.compile(r"\s*(fmt: *(skip|off|on)|noqa\b.*|type: *ignore.*)$")


@functools.cache
def _parse(path: str):
    with open(path) as f:
        text = f.read()
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            body = _PRAGMA.sub("", tok.string.lstrip("#").strip()).strip()
            comments[tok.start[0]] = body
    return ast.parse(text), comments, text.splitlines()


def _comment(stmt, path: str) -> str | None:
    _, comments, lines = _parse(path)
    for line in range(stmt.lineno, stmt.end_lineno + 1):
        if comments.get(line):
            return comments[line]
    above, line = [], stmt.lineno - 1
    while line >= 1 and lines[line - 1].lstrip().startswith("#"):
        above.insert(0, comments.get(line, ""))
        line -= 1
    return " ".join(t for t in above if t) or None


def _imports(tree) -> dict[str, str]:
    """{alias: config file path} of `from configs import x [as y]`."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "configs":
            for a in node.names:
                out[a.asname or a.name] = os.path.join(CONFIGS_DIR, a.name + ".py")
    return out


def _chain(node) -> tuple[str | None, list[str]]:
    """(base name, attribute names) of `c.a.b`; (None, []) otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return (node.id, parts) if isinstance(node, ast.Name) else (None, [])


class _Node:
    """A ConfigDict built in a function: {path: (meaning, own)} + children."""

    def __init__(self, fields=None):
        self.fields = dict(fields or {})
        self.children: list[tuple[str, _Node]] = []
        self.dicts: dict[str, str] = {}  # dict-built sections: meaning

    def note(self, path: str, meaning: str | None, own: bool = True) -> None:
        old = self.fields.get(path)
        if meaning and (old is None or (own and not old[1])):
            self.fields[path] = (meaning, own)

    def resolve(self) -> tuple[dict, dict]:
        fields, dicts = {}, dict(self.dicts)
        for prefix, child in self.children:
            sub, sub_dicts = child.resolve()
            fields.update({f"{prefix}.{k}": v for k, v in sub.items()})
            dicts.update({f"{prefix}.{k}": v for k, v in sub_dicts.items()})
        for path, (meaning, own) in self.fields.items():
            if path not in fields or (own and not fields[path][1]):
                fields[path] = (meaning, own)
        return fields, dicts


def _call_result(value, path: str, tree) -> tuple[dict, dict, set] | None:
    """Meanings of a config-building call: a function of this file or
    `module.get_config(...)` of another config file."""
    if not isinstance(value, ast.Call):
        return None
    base, attrs = _chain(value.func)
    local = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    if not attrs and base in local:
        return _function(path, base)
    other = _imports(tree).get(base)
    if attrs == ["get_config"] and other and os.path.isfile(other):
        return _function(other, "get_config")
    return None


@functools.cache
def _function(path: str, name: str) -> tuple[dict, dict, frozenset]:
    """({field: (meaning, own)}, {dict section: meaning}, files used) of the
    ConfigDict that function `name` of config file `path` returns."""
    tree = _parse(path)[0]
    fn = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == name)
    nodes: dict[str, _Node] = {}
    files, result = {path}, _Node()

    def mount(node: _Node, prefix: str, got) -> None:
        fields, dicts, used = got
        files.update(used)
        for k, (meaning, _) in fields.items():
            node.note(f"{prefix}{k}", meaning, own=False)
        node.dicts.update({f"{prefix}{k}": v for k, v in dicts.items()})

    def visit(stmts) -> None:
        nonlocal result
        for s in stmts:
            for field in ("body", "orelse", "finalbody"):
                if not isinstance(s, ast.FunctionDef) and hasattr(s, field):
                    visit(getattr(s, field))
            if isinstance(s, ast.Return) and isinstance(s.value, ast.Name):
                result = nodes.get(s.value.id, result)
            if not isinstance(s, ast.Assign) or len(s.targets) != 1:
                continue
            target, value = s.targets[0], s.value
            got = _call_result(value, path, tree)
            if isinstance(target, ast.Name):
                nodes[target.id] = _Node()
                if got:
                    mount(nodes[target.id], "", got)
                continue
            base, attrs = _chain(target)
            if base not in nodes or not attrs:
                continue
            node, dotted = nodes[base], ".".join(attrs)
            meaning = _comment(s, path)
            if isinstance(value, ast.Name) and value.id in nodes:
                node.children.append((dotted, nodes[value.id]))
            elif got:
                mount(node, dotted + ".", got)
            elif isinstance(value, ast.Call) and value.args and meaning:
                node.dicts[dotted] = meaning  # ConfigDict(TABLE[variant])
            node.note(dotted, meaning)

    visit(fn.body)
    fields, dicts = result.resolve()
    return fields, dicts, frozenset(files)


def _docstring_entry(files, leaf: str) -> str | None:
    """The rest of a docstring line `  <leaf>  meaning` (+ its continuation)."""
    for path in sorted(files):
        doc = ast.get_docstring(_parse(path)[0]) or ""
        lines = doc.splitlines()
        for i, line in enumerate(lines):
            m = re.match(rf"^\s+{re.escape(leaf)}\s+(\S.*)$", line)
            if not m:
                continue
            text, col = [m[1].strip()], m.start(1)
            for more in lines[i + 1 :]:
                if len(more) - len(more.lstrip()) < col or not more.strip():
                    break
                text.append(more.strip())
            return " ".join(text)
    return None


def field_meanings(path: str, config) -> dict[str, str | None]:
    """{dotted field of `config`: one-line meaning or None} from the source of
    config file `path` (see the module docstring for the rules)."""
    fields, dicts, files = _function(os.path.abspath(path), "get_config")
    out = {}
    for name in flatten(config):
        meaning = fields.get(name, (None, False))[0]
        if meaning is None:
            section = next((d for d in dicts if name.startswith(d + ".")), None)
            if section:
                meaning = f"{dicts[section]} ({name[len(section) + 1 :]})"
        if meaning is None:
            meaning = _docstring_entry(files, name.rpartition(".")[2])
        out[name] = meaning
    return out


def default_variant(module) -> str | None:
    """The variant `get_config(None)` returns (compared field by field)."""
    default = module.get_config(None).to_dict()
    for name in getattr(module, "VARIANTS", ()):
        if module.get_config(name).to_dict() == default:
            return name
    return None


def _shown(value, width: int = 60) -> str:
    text = repr(tuple(value) if isinstance(value, list) else value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _example(fields: dict) -> tuple[str, str]:
    """A concrete override: a step/epoch count, else the first int field."""
    ints = [k for k, v in fields.items() if type(v) is int and v > 0]
    pick = next((k for k in ints if k.split(".")[-1] in ("epochs", "steps")), None)
    pick = pick or (ints[0] if ints else next(iter(fields)))
    value = fields[pick]
    return pick, str(value * 2) if type(value) is int else str(value)


def help_text(prog: str, shown_path: str, path: str, module) -> str:
    """The part of `--help` after the options: variants, overrides, fields."""
    variants = list(getattr(module, "VARIANTS", ()))
    default = default_variant(module)
    config = module.get_config(None)
    fields = flatten(config)
    meanings = field_meanings(path, config)
    listed = ", ".join(f"{v} (default)" if v == default else v for v in variants)
    name, value = _example(fields)
    lines = [
        f"variants of {shown_path}: {listed or '(none listed)'}",
        f"  pick one with --config {shown_path}:VARIANT",
        "",
        "overrides: --config.<field>=VALUE sets one field of the config; VALUE is",
        "  a Python literal of the field's type (strings unquoted). Example:",
        f"  python -m {prog} --config {shown_path} --workdir DIR "
        f"--config.{name}={value}",
        "",
        f"fields and defaults ({shown_path}{':' + default if default else ''}):",
    ]
    for key, val in fields.items():
        lines.append(f"  {key} = {_shown(val)}  # {meanings[key] or '?'}")
    return "\n".join(lines) + "\n"
