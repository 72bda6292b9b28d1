"""The one plotting style of every figure the library and the main job write.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas (no
pyplot figure registry, nothing to close) and saved atomically as PNG.
The style sets font sizes that stay readable at the saved size, puts legends
outside the data (`legend_outside`), gives every heatmap its colourbar and
readable cell values (`heatmap`), and wraps long titles. Callers label axes
with units and write titles that say exactly what is drawn; numbers in
titles come from the same results the report prints.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

import numpy as np

from jaxcxai.atomic_files import atomic_write

__all__ = [
    "DPI",
    "colors",
    "figure",
    "heatmap",
    "legend_outside",
    "save",
    "title",
]

DPI = 120
# Points at the saved size: 9 pt text is about 15 px at 120 dpi.
_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 11,
    "axes.grid": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    "image.interpolation": "nearest",
}


def figure(nrows: int = 1, ncols: int = 1, size=(6.0, 4.0), **kwargs):
    """(fig, axes) with the house style; `axes` is squeezed like pyplot's.

    Args:
      nrows, ncols: subplot grid.
      size: (width, height) in inches at `DPI`.
      kwargs: passed to `Figure.subplots` (sharex, sharey, squeeze, ...).
    """
    import matplotlib
    from matplotlib.figure import Figure

    # Text sizes are read from rcParams when each label is created, after
    # this returns, so the style is set process-wide (only these keys).
    matplotlib.rcParams.update(_RC)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **kwargs)


def title(ax, text: str, width: int = 60) -> None:
    """Sets a title wrapped at `width` characters."""
    ax.set_title("\n".join(textwrap.wrap(text, width)))


def colors(n: int):
    """n distinguishable colours (tab10, then tab20 beyond 10)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def legend_outside(ax, where: str = "right", **kwargs):
    """A legend beside ("right") or under ("below") the axes, off the data."""
    if where == "right":
        kw = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    elif where == "below":
        kw = dict(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    else:
        raise ValueError(f"where must be 'right' or 'below', got {where!r}")
    return ax.legend(**(kw | kwargs))


def heatmap(
    ax,
    values,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    cbar_label: str,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    fmt: str = ".2f",
    annotate: bool | None = None,
):
    """A labelled matrix with a colourbar and (for up to 15 x 15) cell values.

    Cell text is black or white by the cell's luminance, so it stays
    readable; NaN cells are grey and print "n/a".

    Args:
      ax: target axes.
      values: (R, C) array.
      row_labels, col_labels: tick labels.
      cbar_label: what the colour means (with units).
      annotate: print values in the cells (default: when R, C <= 15).
    """
    from matplotlib import colormaps

    v = np.asarray(values, np.float64)
    finite = v[np.isfinite(v)]
    lo = vmin if vmin is not None else (finite.min() if finite.size else 0.0)
    hi = vmax if vmax is not None else (finite.max() if finite.size else 1.0)
    cm = colormaps[cmap].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(v), cmap=cm, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label(cbar_label)
    if annotate is None:
        annotate = v.shape[0] <= 15 and v.shape[1] <= 15
    if annotate:
        span = (hi - lo) or 1.0
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                x = v[i, j]
                if not np.isfinite(x):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7)
                    continue
                r, g, b, _ = cm(np.clip((x - lo) / span, 0, 1))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, format(x, fmt), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    return im


def save(fig, path: str) -> str:
    """Writes `fig` as PNG to `path` (temporary name, then rename).

    Returns:
      The file's base name (what reports link to).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    return os.path.basename(path)
