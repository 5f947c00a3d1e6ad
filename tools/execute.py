"""Run chapters top to bottom and store their outputs in place.

    python tools/execute.py book/01_neuron.ipynb [more.ipynb ...]

Use it after editing a chapter, so that the committed outputs are the ones the
code produces now (nbval compares against them).  Cells run in the current
Python environment, from the ``book/`` folder, like `jupyter-book build` does.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 1800) -> None:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:      # wall-clock stamps: they change on every run and say nothing
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        execute(Path(arg))
