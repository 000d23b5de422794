"""Two uninterrupted runs of one config and seed through `sttune run`, on a tiny model:
`python tests/helpers/uninterrupted_runs.py WORKDIR` writes WORKDIR/runs/a (the smoke preset with
the overrides below) and WORKDIR/runs/b (a replay of a's config.yaml), and the model in WORKDIR/tiny.

The test suite starts this in the background when collection ends; end_to_end/test_reproducibility.py
compares a with b, end_to_end/test_recovery.py compares interrupted and resumed runs with a."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent  # tests/


def tiny_pipeline_overrides(tiny_model: Path) -> list[str]:
    """The smoke preset on the tiny model: 48 training pairs in batches of 8 (6 steps an epoch), 24
    steps with a validation and a checkpoint every 3, a small evaluation and small maps. The learning
    rate is high enough for the random tiny model to change (its best checkpoint is a late one)."""
    return [f"model.name={tiny_model}", "data.max_train_rows=48", "data.max_validation_rows=24",
            "data.max_test_rows=16", "train.batch_size=8", "train.max_steps=24", "train.evaluations_per_epoch=2",
            "train.early_stopping_patience=null", "train.logging_steps=1", "train.learning_rate=5e-4",
            "eval.bootstrap_samples=50", "eval.reference_max_pairs=40", "eval.interpolation_alphas=[0, 0.5, 1]",
            "viz.max_points=40", "viz.n_epochs=30", "viz.n_clusters=3"]


def override_args(overrides: list[str]) -> list[str]:
    return [part for override in overrides for part in ("-p", override)]


def run(workdir: Path, name: str, *args: str) -> int:
    """`sttune run --name NAME ARGS` in WORKDIR, its output in NAME.out / NAME.err."""
    with open(workdir / f"{name}.out", "w") as out, open(workdir / f"{name}.err", "w") as err:
        return subprocess.run([sys.executable, "-m", "sttune_helpers.cli", "run", "--name", name, *args],
                              cwd=workdir, stdout=out, stderr=err).returncode


def main(workdir: Path) -> int:
    sys.path.insert(0, str(HERE))
    from helpers.tiny_model import build_tiny_model_folder

    workdir.mkdir(parents=True, exist_ok=True)
    tiny = build_tiny_model_folder(workdir / "tiny")
    # One after the other: the suite's unit tests use the other core.
    if run(workdir, "a", "--preset", "smoke", *override_args(tiny_pipeline_overrides(tiny))) != 0:
        print((workdir / "a.out").read_text()[-6000:] + (workdir / "a.err").read_text()[-6000:])
        return 1
    if run(workdir, "b", "--config", str(workdir / "runs" / "a" / "config.yaml")) != 0:
        print((workdir / "b.out").read_text()[-6000:] + (workdir / "b.err").read_text()[-6000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
