"""sttune: a notebook-first workbench for fine-tuning Sentence Transformers.

Layers, lowest first; a module imports only its own layer or lower ones (tests/unit/test_architecture.py):

    core/       file I/O, the SttuneError base, device and precision, statistics, the logger, progress events
    shapes/     one file per task shape: columns, validation, losses, metrics, evaluator, scoring
    config/     the RunConfig schema (data.shape takes any registered shape), presets, overrides
    rundir.py   the run-directory contract: paths, manifest, ``RunDir.stage(name)``
    modeling.py model loading, dropout, pooling
    data/  scoring/  losses/  training/  evaluation/  viz/   the work of each stage
    stages/     the five stages' steps, as the notebooks, the sweep, the CLI and the workers call them
    runner/  ui/  cli.py   papermill runs, sweeps and torchrun workers; widgets; the ``sttune`` command
"""

from importlib import metadata

try:
    __version__ = metadata.version("sttune")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
