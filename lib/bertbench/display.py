"""Showing tables and figures the way the session shows things: inline in a Jupyter kernel, as text or files in a
plain ``python notebooks/NN_name.py`` run.

The plotting helpers never choose a matplotlib backend (a kernel keeps its inline backend; a plain run without a
display gets matplotlib's headless default) and always save their figure under ``outputs/figures/``; the notebook then
calls :func:`show`, which draws the figure in the cell's output and closes it (so it is not drawn twice).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def in_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, nbclient, papermill), False in a plain Python run."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def show(obj, *, digits: int | None = 4) -> None:
    """Show ``obj`` as the cell's output: a DataFrame as an HTML table in a kernel (text in a plain run, every row
    and column), a matplotlib figure or seaborn grid inline (closed afterwards), a PNG path as an image; anything
    else through IPython's display, or printed.

    Args:
        digits: DataFrames are rounded to this many decimals for reading (``None``: as they are).
    """
    kernel = in_kernel()
    figure = getattr(obj, "figure", obj)  # a seaborn grid holds its figure
    if isinstance(obj, pd.DataFrame | pd.Series):
        frame = obj.round(digits) if digits is not None else obj
        _display(frame) if kernel else print(frame.to_string())
    elif hasattr(figure, "savefig"):
        import matplotlib.pyplot as plt

        if kernel:
            _display(figure)
        plt.close(figure)  # shown once: the inline backend would draw an open figure again at the cell's end
    elif isinstance(obj, str | Path) and str(obj).endswith(".png"):
        if kernel:
            from IPython.display import Image

            _display(Image(filename=str(obj)))
        else:
            print(f"figure -> {obj}")
    else:
        _display(obj) if kernel else print(obj)
