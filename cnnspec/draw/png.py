"""PNG from a :class:`Layout` with matplotlib (the Agg backend, no display), drawing the same shapes
as the SVG in the same pixel coordinates."""
from __future__ import annotations

from ..errors import UsageError
from .layout import FONT, LINE, PAD_Y, Layout
from .style import ARROW_STYLES, CLUSTER_FILL, CLUSTER_STROKE, fill

DPI = 100
MAX_SIDE = 32_000  # px: Agg's limit is 2**16; past this the drawing is scaled down to fit


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import patches
        from matplotlib import pyplot as plt
    except ImportError:
        raise UsageError("drawing .png needs matplotlib and grandalf: pip install 'cnnspec[draw]'") from None
    return plt, patches


def write_png(layout: Layout, path) -> None:
    plt, patches = _matplotlib()
    scale = min(1.0, MAX_SIDE / max(layout.width, layout.height))
    pt = 72 / DPI * scale  # points per layout pixel
    fig = plt.figure(figsize=(layout.width * scale / DPI, layout.height * scale / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.axis("off")
    for f in layout.frames:
        ax.add_patch(patches.FancyBboxPatch((f.x, f.y), f.w, f.h, boxstyle="round,pad=0,rounding_size=6",
                                            facecolor=CLUSTER_FILL, edgecolor=CLUSTER_STROKE, linestyle="--",
                                            linewidth=0.8 * scale))
        ax.text(f.x + 6, f.y + 12, f.label, fontsize=FONT * pt, family="monospace", style="italic",
                color="#555555", va="baseline")
    for r in layout.routes:
        line = ARROW_STYLES[r.style]
        xs, ys = zip(*r.points)
        ax.plot(xs[:-1] + (xs[-1],), ys, color=line.colour, linewidth=1.3 * pt * 1.4,
                linestyle="--" if line.dashed else "-")
        ax.annotate("", xy=r.points[-1], xytext=r.points[-2],
                    arrowprops={"arrowstyle": "-|>", "color": line.colour, "linewidth": 0, "shrinkA": 0,
                                "shrinkB": 0, "mutation_scale": 10 * scale})
    for p in layout.boxes:
        ax.add_patch(patches.FancyBboxPatch((p.x, p.y), p.w, p.h, boxstyle="round,pad=0,rounding_size=5",
                                            facecolor=fill(p.box.kind), edgecolor="#444444", linewidth=scale))
        for i, text in enumerate(p.box.lines):
            ax.text(p.cx, p.y + PAD_Y + LINE * i + LINE * 0.75, text, fontsize=FONT * pt, family="monospace",
                    ha="center", va="baseline", weight="bold" if i == 0 else "normal")
    fig.savefig(path, dpi=DPI, facecolor="#ffffff")
    plt.close(fig)
