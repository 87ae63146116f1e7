"""Reports: training-curve PNGs and Markdown tables."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(history, path, metric="perplexity", title=None, train_label="train"):
    """Plots train and validation `metric` per epoch from a CSV-log history to a PNG.

    Args:
        history: list of dicts with `epoch`, `metric` and `val_<metric>` keys.
        path: where the PNG goes.
        train_label: legend of the training curve (say when it is not
            comparable to validation, e.g. a sampled-softmax loss).
    """
    epochs = [row["epoch"] + 1 for row in history]
    figure, axis = plt.subplots(figsize=(6, 4))
    for key, label in ((metric, train_label), (f"val_{metric}", "validation")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            axis.plot(epochs, values, marker="o", label=label)
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.set_yscale("log")
    axis.set_title(title or metric)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown_table(rows, columns):
    """Rows (dicts) -> a Markdown table with the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
