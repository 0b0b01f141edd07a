"""curves.png: loss and accuracy per epoch, drawn without a display."""
from __future__ import annotations

import io


def plot_curves(metrics: dict) -> bytes:
    """Loss and accuracy per epoch, train and held-out, as PNG bytes (matplotlib, Agg, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

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
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{metrics['spec']} ({metrics['backend']}, {metrics['data']}): test accuracy "
                 f"{metrics['test_accuracy']:.4f} at epoch {metrics['best_epoch']} (chosen by {metrics['selected_by']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
