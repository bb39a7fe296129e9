"""matplotlib for the pictures the tools write (evaluation, survey, benchmark)."""


def pyplot():
    """matplotlib.pyplot on the Agg backend: pictures go to files, and a server or CI has no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path, dpi: int = 120, rect=None, format=None):
    """Writes ``fig`` to ``path`` (or a file object, in ``format``) laid out tight (within ``rect``
    of the figure, (left, bottom, right, top) fractions, leaving room for a figure-wide legend),
    and closes it (pyplot keeps every open figure)."""
    try:
        fig.tight_layout(rect=rect)
        fig.savefig(path, dpi=dpi, format=format)
    finally:  # (a failed write too: pyplot would keep the figure open)
        plt.close(fig)
