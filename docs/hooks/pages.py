"""MkDocs hooks of the documentation site: API pages, tutorials, checks.

* API reference: one generated page per public unit (a package whose
  ``__init__.py`` lists ``__all__``, or a top-level module that does), each
  rendering exactly the names of its ``__all__`` with mkdocstrings; after
  the build, every one of those names must have its anchor in the HTML, so a
  public name missing from the reference fails the build.
* Benchmarks: the ``<!-- benchmark-records -->`` marker of a page becomes a
  table of every record under ``docs/benchmarks/<device>/*.json``.
* Tutorials: every ``docs/tutorials/*.py`` (jupytext percent format, cells
  start with ``# %%``; ``# %% [markdown]`` cells hold markdown as comments)
  is run cell by cell in one namespace and rendered as a page with its
  printed output and figures (PNG, inline). ``JAXCXAI_TUTORIAL_SIZE``
  (default "tiny", as CI runs them) is passed on to the scripts; set
  ``JAXCXAI_DOCS_RUN=0`` to render the code without running it. Each
  tutorial runs in a fresh Python process (no state leaks from one into the
  next), ``JAXCXAI_DOCS_JOBS`` (default 2) at a time.

An exception in a tutorial cell fails the build, naming the file and cell.
"""

from __future__ import annotations

import ast
import base64
import concurrent.futures
import contextlib
import io
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jaxcxai"
TUTORIALS = ROOT / "docs" / "tutorials"


def _all_names(path: pathlib.Path) -> list[str] | None:
    """The literal ``__all__`` of a module file, or None."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    return None


def public_units() -> dict[str, list[str]]:
    """{dotted module: its ``__all__``} of every public unit of jaxcxai."""
    out = {}
    for init in sorted(PACKAGE.rglob("__init__.py")):
        names = _all_names(init)
        if names:
            out[".".join(init.parent.relative_to(ROOT).parts)] = names
    for mod in sorted(PACKAGE.glob("*.py")):
        names = _all_names(mod) if mod.name != "__init__.py" else None
        if names:
            out[f"jaxcxai.{mod.stem}"] = names
    return out


def _doc_names(dotted: str, names: list[str]) -> list[str]:
    """The names rendered on a unit's page: modules re-exported by a package
    get their own page, and dunders (``__version__``) none."""
    subs = {d.rsplit(".", 1)[1] for d in public_units() if d.startswith(dotted + ".")}
    return [n for n in names if n not in subs and not n.startswith("__")]


def _api_page(dotted: str, names: list[str]) -> str:
    members = _doc_names(dotted, names)
    subs = [d for d in public_units() if d.rsplit(".", 1)[0] == dotted]
    lines = [f"# `{dotted}`", ""]
    if subs:
        lines += ["Sub-units: " + ", ".join(f"[`{d}`]({d}.md)" for d in subs), ""]
    lines += [f"::: {dotted}", "    options:", "      show_root_heading: false",
              "      show_submodules: true",
              "      members:" + ("" if members else " false")]  # fmt: skip
    lines += [f"        - {n}" for n in members]
    return "\n".join(lines) + "\n"


def _api_index(units: dict[str, list[str]]) -> str:
    lines = ["# API reference", "",
             "Every public name of the library, one page per package (its "
             "`__init__.py` lists them in `__all__`) or top-level module. "
             "Docstrings are Google style with shapes and the paper each "
             "method comes from.", "",
             "| unit | public names |", "|---|---|"]  # fmt: skip
    for dotted, names in units.items():
        lines.append(f"| [`{dotted}`]({dotted}.md) | {len(names)} |")
    return "\n".join(lines) + "\n"


def split_cells(source: str) -> list[tuple[str, str]]:
    """[(kind "code" | "markdown", text)] of a jupytext percent script; the
    lines before the first ``# %%`` are a code cell (the module docstring)."""
    cells, kind, buf = [], "code", []
    for line in source.splitlines():
        if line.startswith("# %%"):
            if any(b.strip() for b in buf):
                cells.append((kind, "\n".join(buf).strip("\n")))
            kind, buf = ("markdown" if "[markdown]" in line else "code"), []
        else:
            buf.append(line)
    if any(b.strip() for b in buf):
        cells.append((kind, "\n".join(buf).strip("\n")))
    return [(k, "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#")
                          for ln in t.splitlines()) if k == "markdown" else t)
            for k, t in cells]  # fmt: skip


def _figures() -> list[str]:
    """Every open matplotlib figure as a base64 PNG, then closed."""
    if "matplotlib.pyplot" not in sys.modules:
        return []
    plt = sys.modules["matplotlib.pyplot"]
    out = []
    for num in plt.get_fignums():
        buf = io.BytesIO()
        plt.figure(num).savefig(buf, format="png", dpi=80, bbox_inches="tight")
        out.append(base64.b64encode(buf.getvalue()).decode())
    plt.close("all")
    return out


def run_tutorial(path: pathlib.Path, execute: bool = True) -> str:
    """The markdown page of one tutorial: its cells, outputs and figures."""
    cells = split_cells(path.read_text())
    ns = {"__name__": "__main__", "__file__": str(path)}
    lines, t0 = [], time.perf_counter()
    cwd = os.getcwd()
    with contextlib.ExitStack() as stack:
        if execute:
            import matplotlib

            matplotlib.use("Agg")
            tmp = stack.enter_context(__import__("tempfile").TemporaryDirectory())
            os.chdir(tmp)
            stack.callback(os.chdir, cwd)
        for i, (kind, text) in enumerate(cells):
            if kind == "markdown":
                lines += [text, ""]
                continue
            lines += ["```python", text, "```", ""]
            if not execute:
                continue
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(text, f"{path.name} cell {i}", "exec"), ns)
            except Exception as e:
                raise PluginError(
                    f"tutorial {path.name}, cell {i} failed:\n{traceback.format_exc()}"
                ) from e
            if out.getvalue().strip():
                lines += ["```text", out.getvalue().rstrip(), "```", ""]
            lines += [f"![figure of cell {i}](data:image/png;base64,{png})\n"
                      for png in _figures()]  # fmt: skip
    if execute:
        size = os.environ.get("JAXCXAI_TUTORIAL_SIZE", "tiny")
        lines.append(f"*Run when the site was built ({size} mode, "
                     f"{time.perf_counter() - t0:.0f} s).*")  # fmt: skip
    return "\n".join(lines) + "\n"


def _seconds(x) -> str:
    return "n/a" if x is None else (f"{x:.3g} s" if x >= 1e-3 else f"{x * 1e6:.3g} us")


def benchmark_table(root: pathlib.Path = ROOT / "docs" / "benchmarks") -> str:
    """A markdown table of every benchmark record under `root`."""
    import json

    lines = ["| device | name | size | ours | baseline | ratio | agrees | baseline run |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for path in sorted(root.glob("*/*.json")):
        r = json.loads(path.read_text())
        dev = r.get("device", {})
        kind = dev.get("kind", "?") if dev.get("platform") != "cpu" else (
            f"CPU, {dev.get('cpu_count', '?')} cores")  # fmt: skip
        ratio = r.get("speedup")
        lines.append(
            f"| {path.parent.name} ({kind}) | `{r.get('name', path.stem)}` | "
            f"{'quick' if r.get('quick') else 'full'} | {_seconds(r.get('ours_s'))} | "
            f"{_seconds(r.get('baseline_s'))} | "
            f"{'n/a' if ratio is None else f'{ratio:.3g}x'} | "
            f"{'yes' if r.get('agreement_ok') else '**no**'} | "
            f"{str(r.get('baseline', '')).replace('|', '/')} |"
        )
    return "\n".join(lines)


def on_page_markdown(markdown, page, config, files):
    if "<!-- benchmark-records -->" in markdown:
        markdown = markdown.replace("<!-- benchmark-records -->", benchmark_table())
    return markdown


def on_config(config):
    os.environ.setdefault("JAXCXAI_TUTORIAL_SIZE", "tiny")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files, config):
    units = public_units()
    files.append(File.generated(config, "api/index.md", content=_api_index(units)))
    for dotted, names in units.items():
        files.append(File.generated(config, f"api/{dotted}.md",
                                    content=_api_page(dotted, names)))  # fmt: skip
    execute = os.environ.get("JAXCXAI_DOCS_RUN", "1") != "0"
    nav = str(config.get("nav"))
    paths = sorted(TUTORIALS.glob("*.py"))
    uris = [f"tutorials/{path.stem}.md" for path in paths]
    for path, uri in zip(paths, uris):
        if uri not in nav:
            raise PluginError(
                f"tutorial {path.name} has no page in mkdocs.yml's nav ({uri})"
            )
    jobs = max(1, int(os.environ.get("JAXCXAI_DOCS_JOBS", "2")))
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        pages = pool.map(lambda p: tutorial_page(p, execute), paths)
        for uri, content in zip(uris, pages):
            files.append(File.generated(config, uri, content=content))
    return files


def tutorial_page(path: pathlib.Path, execute: bool = True) -> str:
    """`run_tutorial` in a fresh Python process (this file as a script).

    Raises:
      PluginError: naming the tutorial, with the failing cell's traceback.
    """
    if not execute:
        return run_tutorial(path, execute=False)
    print(f"[docs] running tutorial {path.name}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "page.md"
        done = subprocess.run(
            [sys.executable, __file__, "--out", str(out), str(path)],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not out.is_file():
            raise PluginError(
                f"tutorial {path.name} failed (exit {done.returncode}):\n"
                f"{done.stderr[-4000:]}"
            )
        return out.read_text()


def on_post_build(config):
    """Every public name has its anchor in its unit's page."""
    site = pathlib.Path(config["site_dir"])
    missing = []
    for dotted, names in public_units().items():
        page = site / "api" / dotted / "index.html"
        html = page.read_text() if page.is_file() else ""
        missing += [f"{dotted}.{n}" for n in _doc_names(dotted, names)
                    if f'id="{dotted}.{n}"' not in html]  # fmt: skip
    if missing:
        raise PluginError(f"{len(missing)} public names have no entry in the API "
                          f"reference: {', '.join(missing[:20])}")  # fmt: skip


if __name__ == "__main__":
    # Preview one tutorial's page: python docs/hooks/pages.py docs/tutorials/X.py
    # (written to /tmp/X.preview.md); `--out FILE` writes it there instead (the
    # build runs each tutorial this way). A failing cell exits with status 1.
    os.environ.setdefault("JAXCXAI_TUTORIAL_SIZE", "tiny")
    sys.path.insert(0, str(ROOT))
    args = sys.argv[1:]
    target = None
    if args[:1] == ["--out"]:
        target, args = pathlib.Path(args[1]), args[2:]
    for arg in args:
        try:
            page = run_tutorial(pathlib.Path(arg).resolve())
        except PluginError as err:
            sys.exit(str(err))
        out = target or pathlib.Path(
            "/tmp", pathlib.Path(arg).with_suffix(".preview.md").name
        )
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(page)
        os.replace(tmp, out)  # complete or absent
        print(f"wrote {out}")
