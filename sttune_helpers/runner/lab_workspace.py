"""The folder `sttune lab` opens: the user's copies of the five notebooks and the lab.yaml that sets
their run, so that the templates (``notebooks_dir()``, which papermill executes) are never edited."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..core.errors import SettingError
from ..rundir import NOTEBOOKS, check_run_name
from ..stages.lab import DEFAULT_PRESET, LAB_FILE, read_lab_file, write_lab_file
from .pipeline import notebooks_dir

DEFAULT_WORKSPACE = Path("lab")
DEFAULT_RUN_NAME = "lab"


@dataclass
class Workspace:
    folder: Path
    templates: Path
    copied: list[str] = field(default_factory=list)  # notebooks copied from the templates on this start
    kept: list[str] = field(default_factory=list)  # the user's copies, left as they are
    lab_file: str = "kept"  # "created", "updated" or "kept"
    settings: dict = field(default_factory=dict)  # lab.yaml's content after this start
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"sttune lab: workspace {self.folder}"]
        if self.copied:
            lines.append(f"  copied from {self.templates}: {', '.join(self.copied)}")
        if self.kept:
            lines.append(f"  kept your copies of {', '.join(self.kept)} (never overwritten; delete one to get "
                         "the template again)")
        shown = ", ".join(f"{key} {value}" for key, value in self.settings.items())
        lines.append(f"  {LAB_FILE} ({self.lab_file}): {shown}; set run and preset there, then Run All in 01 to 05")
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)


def copy_notebook(template: Path, copy: Path) -> None:
    """``template`` with the language_info that the kernel reports. JupyterLab replaces a notebook's
    language_info with the kernel's on opening, and a notebook whose own differs (the templates name
    the language, not this environment's Python version) opens marked as changed."""
    from ipykernel.ipkernel import IPythonKernel  # the sttune kernel runs this interpreter (ensure_kernel)

    notebook = nbformat.read(template, as_version=nbformat.NO_CONVERT)
    notebook.metadata["language_info"] = dict(IPythonKernel.language_info)
    nbformat.write(notebook, copy)


def relative_to(path: Path, folder: Path) -> str:
    """``path`` as lab.yaml writes it: relative to the workspace where it can be, else absolute."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def prepare_workspace(folder: Path = DEFAULT_WORKSPACE, run: str | None = None, runs_dir: Path = Path("runs"),
                      preset: str | None = None, config_path: Path | None = None) -> Workspace:
    """Create or reuse ``folder``: copy each stage notebook it lacks, keep the ones it has, and write
    lab.yaml on the first start (run ``runs_dir``/lab, the smoke preset) or where ``run``, ``preset``
    or ``config_path`` are given (a preset without a config clears lab.yaml's config_path)."""
    templates = notebooks_dir()
    if folder.resolve() == templates.resolve():
        raise SettingError(f"--workspace {folder} is the folder of the template notebooks, which `sttune run` "
                           "executes; give another folder (the default is ./lab)")
    if folder.exists() and not folder.is_dir():
        raise SettingError(f"--workspace {folder} is a file, not a folder")
    if run is not None:
        check_run_name(run)
    if config_path is not None and not config_path.is_file():
        raise SettingError(f"--config {config_path} is not a file")
    folder.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(folder.resolve(), templates)
    for name in NOTEBOOKS.values():
        if (folder / name).exists():
            workspace.kept.append(name)
        else:
            copy_notebook(templates / name, folder / name)
            workspace.copied.append(name)

    existing = read_lab_file(folder)
    settings = {"run_dir": existing.get("run_dir") or relative_to(runs_dir / DEFAULT_RUN_NAME, folder),
                "preset": existing.get("preset", DEFAULT_PRESET), "config_path": existing.get("config_path")}
    if run is not None:
        settings["run_dir"] = relative_to(runs_dir / run, folder)
    if preset is not None:
        settings["preset"] = preset
        settings["config_path"] = None
    if config_path is not None:
        settings["config_path"] = relative_to(config_path, folder)
    if not (folder / LAB_FILE).is_file():
        workspace.lab_file = "created"
    elif any(value is not None for value in (run, preset, config_path)):
        workspace.lab_file = "updated"
    if workspace.lab_file != "kept":
        write_lab_file(folder, **settings)
    workspace.settings = {key: value for key, value in settings.items() if value is not None}

    run_config = folder / settings["run_dir"] / "config.yaml"
    if run_config.is_file() and (preset is not None or config_path is not None):
        workspace.notes.append(f"the run already has {run_config.resolve()}, which it keeps: the preset and "
                               "config apply to a new run (give --run NAME)")
    return workspace
