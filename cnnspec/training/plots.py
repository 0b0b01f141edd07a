"""curves.png (loss and accuracy per epoch) and confusion.png, drawn without a display."""
from __future__ import annotations

import io


def plot_curves(metrics: dict) -> bytes:
    """Loss and accuracy per epoch, train and held-out, as PNG bytes (matplotlib, Agg, no display)."""
    return _png(curves_figure(metrics))


def curves_figure(metrics: dict):
    """The figure of curves.png; epochs are whole numbers, so are its epoch ticks."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    hist = metrics["history"]
    epochs = [h["epoch"] for h in hist]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "loss", "loss"),
                           (fig.add_subplot(1, 2, 2), "accuracy", "accuracy")):
        ax.plot(epochs, [h[f"train_{key}"] for h in hist], marker="o", label="train")
        if hist and f"val_{key}" in hist[0]:
            ax.plot(epochs, [h[f"val_{key}"] for h in hist], marker="o", label="validation")
        ax.plot(epochs, [h[f"test_{key}"] for h in hist], marker="o", label="test")
        ax.axvline(metrics["best_epoch"], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if len(set(epochs)) == 1:  # one point: matplotlib's own span (±5%) holds no whole number
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{metrics['spec']} ({metrics['backend']}, {metrics['data']}): test accuracy "
                 f"{metrics['test_accuracy']:.4f} at epoch {metrics['best_epoch']} (chosen by {metrics['selected_by']})")
    return fig


def plot_confusion(metrics: dict) -> bytes:
    """The chosen epoch's test confusion matrix (rows true, columns predicted) as PNG bytes; counts
    written in the cells while there are few enough classes to read them."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    m = np.asarray(metrics["confusion_matrix"])
    labels = metrics["classes"][:len(m)]
    k = len(m)
    side = min(12.0, 2.5 + 0.45 * k)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(m, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if k <= 30:
        ax.set_xticks(range(k), labels=labels, rotation=90 if k > 10 else 0)
        ax.set_yticks(range(k), labels=labels)
        top = m.max() if m.size else 0
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if m[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{metrics['spec']}: test set, epoch {metrics['best_epoch']} "
                 f"(accuracy {metrics['test_accuracy']:.4f})")
    return _png(fig)


def _png(fig) -> bytes:
    """The figure as PNG bytes, with no software tag: the same run gives the same bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
