"""sttune: a notebook-first workbench for fine-tuning Sentence Transformers.

One module per pipeline stage (data, losses, training, evaluation, viz), mirroring the notebooks
in ``notebooks/``; ``config`` and ``rundir`` hold the settings and the run-directory contract.
"""

from importlib import metadata

try:
    __version__ = metadata.version("sttune")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
