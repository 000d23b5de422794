"""What each notebook's parameters cell calls in a JupyterLab workspace: the run that all five open,
from the workspace's ``lab.yaml``, and a stage's error shown as its one-line message.

Precedence, per value: a papermill parameter (injected after the parameters cell, so it replaces what
the cell set) > a value the user wrote in the cell > lab.yaml next to the notebook (read only in
JupyterLab, never under papermill) > the defaults here.
``sttune lab`` writes lab.yaml on its first start (runner/lab_workspace.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..config import preset_names
from ..core.errors import SettingError, SttuneError
from ..core.io import atomic_write_text

LAB_FILE = "lab.yaml"
# The parameters cell's values where neither papermill, the cell nor lab.yaml sets one.
DEFAULT_RUN_DIR = "../runs/lab"
DEFAULT_PRESET = "smoke"  # the quick one; "default" is the main job
SETTINGS = ("run_dir", "preset", "config_path")
# Jupyter Server starts a notebook's kernel with this set to the notebook's path; papermill does not.
SESSION_ENV = "JPY_SESSION_NAME"

_TEMPLATE = """\
# The run that the five notebooks open: set run and preset here, then Run All in 01 to 05.
# A notebook's parameters cell can set its own values instead; `sttune run` (papermill) ignores this file.
# `sttune lab --run NAME --preset P` rewrites it. Relative paths are read from this folder.

run_dir: {run_dir}
# A new run's settings: smoke (a tiny slice of STS-B, about 1.5 minutes), default (the main job: 4 epochs on
# STS-B, the long one, 10 minutes or more on a CPU) or auto (a 20-minute budget). A run that already has a
# config.yaml keeps it: to change the preset or the config, name a new run_dir.
preset: {preset}
# Or a RunConfig YAML file (e.g. another run's config.yaml); it replaces the preset. null: none.
config_path: {config_path}
"""


def notebook_folder() -> Path | None:
    """The folder of the notebook that JupyterLab (Jupyter Server) runs this kernel for; None outside
    such a session, e.g. under papermill."""
    session = os.environ.get(SESSION_ENV)
    if not session:
        return None
    # An absolute path in Jupyter Server 2; else the kernel's working directory, the notebook's folder.
    return Path(session).parent if Path(session).is_absolute() else Path.cwd()


def read_lab_file(folder: str | Path) -> dict[str, Any]:
    """The settings in ``folder``/lab.yaml ({} without one), checked: each error names the file and key."""
    path = Path(folder) / LAB_FILE
    if not path.is_file():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SettingError(f"{path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingError(f"{path} must hold a mapping (run_dir, preset, config_path), got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(SETTINGS))
    if unknown:
        raise SettingError(f"{path}: unknown key(s) {', '.join(unknown)}; the keys are {', '.join(SETTINGS)}")
    for key, value in raw.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SettingError(f"{path}: {key} must be text (or null), got {value!r}")
    preset = raw.get("preset")
    if preset is not None and preset not in preset_names():
        raise SettingError(f"{path}: unknown preset {preset!r}; the presets are: {', '.join(preset_names())}")
    return {key: value for key, value in raw.items() if value is not None}


def write_lab_file(folder: str | Path, run_dir: str, preset: str, config_path: str | None = None) -> Path:
    """Write ``folder``/lab.yaml (with its comments); paths as given, relative ones read from ``folder``."""
    if preset not in preset_names():
        raise SettingError(f"unknown preset {preset!r}; the presets are: {', '.join(preset_names())}")

    def scalar(value: str | None) -> str:
        return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()

    path = Path(folder) / LAB_FILE
    atomic_write_text(path, _TEMPLATE.format(run_dir=scalar(str(run_dir)), preset=scalar(preset),
                                             config_path=scalar(None if config_path is None else str(config_path))))
    return path


def settings(run_dir: str | Path | None = None, preset: str | None = None, config_path: str | Path | None = None,
             folder: str | Path | None = None) -> tuple[str, str, str | None]:
    """``run_dir, preset, config_path`` for a notebook: each value given (not None) is kept; the others
    come from lab.yaml in ``folder`` (default: the notebook's folder in JupyterLab; none under
    papermill), else the defaults. lab.yaml's config_path is for a new run only, like its preset: a
    run with a config.yaml keeps it."""
    folder = notebook_folder() if folder is None else Path(folder)
    from_file = read_lab_file(folder) if folder is not None else {}

    def from_lab(key: str) -> str | None:
        value = from_file.get(key)
        return None if value is None else os.path.normpath(folder / Path(value).expanduser())

    if run_dir is None:
        run_dir = from_lab("run_dir") or DEFAULT_RUN_DIR
    if preset is None:
        preset = from_file.get("preset", DEFAULT_PRESET)
    if config_path is None and not (Path(run_dir) / "config.yaml").is_file():
        config_path = from_lab("config_path")
    return str(run_dir), preset, None if config_path is None else str(config_path)


def _one_line(shell, etype, value, tb, tb_offset=None) -> list[str]:
    """IPython's custom exception handler: show the error's class and message, without the traceback."""
    lines = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, lines)  # in a kernel: the cell's error output, and the failed reply
    return lines


def show_errors_as_one_line(shell=None) -> bool:
    """In a notebook opened in JupyterLab, show an SttuneError (something the user fixes, such as a
    stage run before the one it needs) as its one-line message instead of a traceback; the cell still
    fails, so Run All stops there. A no-op under papermill (no Jupyter Server session), where the
    error and its traceback fail the run. ``shell`` (tests): install on that IPython shell regardless.
    Returns whether the handler was installed."""
    if shell is None:
        if not os.environ.get(SESSION_ENV):
            return False
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
        if shell is None:
            return False
    shell.set_custom_exc((SttuneError,), _one_line)
    return True
