"""matplotlib for the pictures the tools write (evaluation, survey, benchmark)."""


def pyplot():
    """matplotlib.pyplot on the Agg backend: pictures go to files, and a server or CI has no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: str, dpi: int = 120, rect=None):
    """Writes ``fig`` to ``path`` laid out tight (within ``rect`` of the figure, (left, bottom,
    right, top) fractions, leaving room for a figure-wide legend), and closes it (pyplot keeps
    every open figure)."""
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
