"""JupyterLab in a real browser: Debian's Chromium, driven by Playwright, on a copy of the smoke run.

`sttune lab --run browser` starts in a temporary folder: it copies the repository's notebooks (the
templates) into the workspace ``lab/`` and points its lab.yaml at ``runs/browser``, a copy of the
smoke run, which the notebooks then open, unmarked as changed. After the session the repository's notebooks are as they
were (same bytes, same git status) and no ``.ipynb_checkpoints`` appeared in the repository, while the
workspace's copy of 03, saved from the page, holds its outputs. 05 runs before 03: running training
again marks evaluation and the maps pending, and 05 refuses to start on such a run.

Chromium comes from Debian (``scripts/browser-setup.sh``, called by ``make test``); Playwright
launches that binary and never downloads one. Screenshots of every step, and the server's log,
are kept in tests/artifacts/browser/.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import REPO, sttune_command, sttune_env

from sttune_helpers.config import load_preset
from sttune_helpers.rundir import STAGES
from sttune_helpers.ui import ConfigPanel, dom_class
from sttune_helpers.ui.help import HELP_CLASS

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
KERNEL_DISPLAY_NAME = "Python (sttune)"
# Generous: on a busy 2-core machine a kernel spends a minute importing torch before it trains.
SERVER_START_TIMEOUT_S = 300
RUN_ALL_TIMEOUT_S = 1200
UI_TIMEOUT_MS = 60_000


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path):
    """A Chromium context with a fresh profile; skips, saying why, where there is no Chromium to drive."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"browser test skipped: playwright is not importable ({exc}); it is in the dev extra")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser test skipped: {CHROMIUM} is not installed (scripts/browser-setup.sh installs "
                    "Debian's chromium with apt-get as root or with password-less sudo)")
    with sync_playwright() as playwright:
        try:
            context = playwright.chromium.launch_persistent_context(
                user_data_dir=str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
                args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000})
        except PlaywrightError as exc:
            pytest.skip(f"browser test skipped: {CHROMIUM} cannot start: {str(exc).strip().splitlines()[0]}")
        context.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


class Screenshots:
    """Numbered screenshots in tests/artifacts/browser/ (emptied at the start of the test)."""

    def __init__(self, folder: Path):
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.count = 0

    def take(self, target, name: str) -> Path:
        """``target`` is a page (what the window shows) or a locator (that element, scrolled into view)."""
        self.count += 1
        path = self.folder / f"{self.count:02d}_{name}.png"
        target.screenshot(path=str(path))
        return path


# --- the JupyterLab server -------------------------------------------------------------------------


@dataclass
class Lab:
    url: str
    token: str
    notebooks: Path  # the workspace: the copies that the page opens
    run_dir: Path
    log: Path
    repository_before: dict

    def api(self, method: str, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Not searched for .ipynb_checkpoints: folders that no lab session of this test could write into.
NOT_SEARCHED = {".git", ".venv", ".tools", "runs", "__pycache__", ".pytest_cache", "node_modules"}


def repository_state() -> dict:
    """The template notebooks' bytes (as hashes), git's status of notebooks/ and the repository's
    .ipynb_checkpoints folders: what a lab session must leave as it found it."""
    templates = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((REPO / "notebooks").iterdir())}
    status = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        status = subprocess.run(["git", "status", "--porcelain", "--ignored", "--", "notebooks"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
    checkpoints = set()
    for folder, subfolders, _ in os.walk(REPO):
        subfolders[:] = [name for name in subfolders if name not in NOT_SEARCHED]
        checkpoints.update(str(Path(folder, name).relative_to(REPO)) for name in subfolders
                           if name == ".ipynb_checkpoints")
    return {"templates": templates, "git status": status, "checkpoints": checkpoints}


def log_tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


@pytest.fixture
def lab(smoke_run, tmp_path):
    """`sttune lab --run browser` on 127.0.0.1, started in tmp_path: its workspace is tmp_path/lab, and
    runs/browser, the run its lab.yaml names, a copy of the smoke run."""
    smoke_dir, _ = smoke_run
    repository_before = repository_state()
    workspace = tmp_path / "lab"
    run_dir = tmp_path / "runs" / "browser"  # not lab.yaml's first run (runs/lab): the notebooks follow --run
    shutil.copytree(smoke_dir, run_dir, symlinks=True)
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    not_done = {stage: stages[stage]["status"] for stage in STAGES if stages[stage]["status"] != "completed"}
    assert not not_done, f"the smoke run in {smoke_dir} was changed before this test copied it: {not_done}"

    jupyter = tmp_path / "jupyter"
    for folder in ("config", "data", "runtime", "ipython"):
        (jupyter / folder).mkdir(parents=True)
    # JupyterLab asks in a toast whether to fetch its news feed, over the panel's buttons: answer no.
    notification = jupyter / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token = secrets.token_hex(16)
    port = free_port()
    env = {
        **sttune_env(),  # HF_HUB_OFFLINE=1, and the tests' OMP_NUM_THREADS / NUMBA_DISABLE_JIT
        # A fresh Jupyter configuration, workspace and runtime folder; the sttune kernel stays visible
        # because it is registered in the environment's share/jupyter, which is searched anyway.
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "IPYTHONDIR": str(jupyter / "ipython"),
    }
    env.pop("MPLBACKEND", None)  # the kernel's figures must reach the page through the inline backend
    env.pop("STTUNE_NOTEBOOKS", None)  # the templates are the repository's notebooks
    arguments = [
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
        # No network: no news feed, no update check, no PyPI queries from the extension manager.
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI runs as root; Jupyter refuses root without being told
        arguments.append("--ServerApp.allow_root=True")
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        # Its own session: `sttune lab` and the jupyter server it starts can be stopped together.
        # "--": without it, `sttune lab`'s parser refuses options meant for jupyter lab.
        process = subprocess.Popen(sttune_command("lab", "--run", "browser", "--", *arguments), cwd=tmp_path, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, workspace, run_dir, log, repository_before)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"sttune lab exited with {process.returncode} before answering:\n{log_tail(log)}")
            with contextlib.suppress(OSError):
                if server.api("GET", "/api/status")[0] == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"sttune lab did not answer within {SERVER_START_TIMEOUT_S} s:\n{log_tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        stop_lab(server, process, jupyter / "runtime")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            shutil.copy2(log, ARTIFACTS / "lab.log")


def stop_lab(server: Lab, process: subprocess.Popen, runtime_dir: Path) -> None:
    """Shut the server down with its kernels; then kill what is left of it, by process id."""
    with contextlib.suppress(OSError, urllib.error.URLError):
        server.api("POST", "/api/shutdown")  # stops every kernel, then the server
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Kernels run in sessions of their own; theirs are the processes given a connection file in our runtime folder.
    for pid in processes_mentioning(str(runtime_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
    return pids


# --- JupyterLab in the page ------------------------------------------------------------------------

# Each code cell's prompt ("[ ]:", "[*]:" while queued or running, "[3]:" when run) and the kernel's
# state as the notebook toolbar's execution indicator shows it.
_NOTEBOOK_STATE = """panel => ({
    prompts: [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim()),
    status: panel.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') ?? null,
})"""


# The tooltip the browser shows at a point: the title of the element under the pointer or of its nearest
# ancestor with one. (Not `:hover`, which a label passes on to its control: a dropdown's <select>.)
_TITLE_AT = """([x, y]) => document.elementFromPoint(x, y)?.closest('[title]')?.getAttribute('title') ?? null"""


def code_cell_count(path: Path) -> int:
    return sum(cell["cell_type"] == "code" for cell in json.loads(path.read_text())["cells"])


def open_notebook(browser, lab: Lab, name: str):
    """A new tab on the notebook, once its sttune kernel is idle; returns (page, notebook panel)."""
    page = browser.new_page()
    # A workspace of its own, so that the tab shows this notebook alone (not the ones opened before).
    page.goto(f"{lab.url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={lab.token}")
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-KernelName", has_text=KERNEL_DISPLAY_NAME).wait_for()
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="attached", timeout=SERVER_START_TIMEOUT_S * 1000)
    expected = code_cell_count(lab.notebooks / name)
    prompts = panel.evaluate(_NOTEBOOK_STATE)["prompts"]
    assert len(prompts) == expected, f"{name}: the page shows {len(prompts)} code cells, the file has {expected}"
    assert_not_marked_changed(page, name)
    return page, panel


def assert_not_marked_changed(page, name: str, watch_s: float = 3) -> None:
    """The tab of a notebook opened untouched never shows the unsaved-changes dot. JupyterLab writes the
    kernel's kernelspec and language_info into the notebook once the kernel answers, and marks the
    notebook changed when they differ from the file's; watched a few seconds past the idle kernel."""
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    deadline = time.monotonic() + watch_s
    while time.monotonic() < deadline:
        assert "jp-mod-dirty" not in (tab.get_attribute("class") or "").split(), \
            f"{name} opened untouched, and its tab is marked as changed"
        time.sleep(0.25)


def run_all_cells(page, panel, name: str, shots: Screenshots) -> None:
    """Run > Run All Cells, then wait until every code cell has run; fails with the error output otherwise."""
    page.locator(".lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$"))).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    started = False
    while True:
        state = panel.evaluate(_NOTEBOOK_STATE)
        queued = any(prompt == "[*]:" for prompt in state["prompts"])
        started = started or queued or any(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"])
        if started and not queued and state["status"] == "idle":
            break
        if time.monotonic() > deadline:
            shots.take(page, f"{name}_timed_out")
            pytest.fail(f"{name}: Run All had not finished after {RUN_ALL_TIMEOUT_S} s: prompts {state['prompts']}, "
                        f"kernel {state['status']}")
        time.sleep(1)
    not_run = [i for i, p in enumerate(state["prompts"]) if not re.fullmatch(r"\[\d+\]:", p)]
    if not_run:
        shots.take(page, f"{name}_stopped")
        errors = panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        text = "\n".join(errors.all_inner_texts())[-6000:]
        pytest.fail(f"{name}: Run All stopped; code cells {not_run} (0-based) did not run. stderr output:\n{text}")


def save_notebook(page, path: Path) -> str:
    """File > Save Notebook; returns the file's text once it has changed and is whole JSON again
    (Jupyter's atomic_writing backs the file up and then writes it in place, so a read can catch it
    empty or half written)."""
    before = path.read_text()
    page.locator(".lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^File$"))).click()
    page.locator(".lm-Menu-item[data-command='docmanager:save']").click()
    deadline = time.monotonic() + 60
    while True:
        text = path.read_text()
        if text != before and _is_json(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not change to a whole notebook within 60 s of File > Save")
        time.sleep(0.25)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def stage_entry(run_dir: Path, stage: str) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["stages"][stage]


def wait_for_file_change(path: Path, before: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text()
        if text != before:
            return text
        time.sleep(0.25)
    pytest.fail(f"{path} did not change within {timeout_s} s of pressing Save config")


# --- the test --------------------------------------------------------------------------------------


def test_lab_runs_the_maps_and_the_training_panel_saves_the_slider_value(browser, lab):
    shots = Screenshots(ARTIFACTS)
    print(f"\nbrowser test screenshots: {ARTIFACTS}")
    copied = {stage: stage_entry(lab.run_dir, stage)["finished"] for stage in ("training", "embedding_viz")}

    # 05: the UMAP maps render as an image in the page.
    page, panel = open_notebook(browser, lab, "05_embedding_viz.ipynb")
    shots.take(page, "05_opened")
    run_all_cells(page, panel, "05", shots)
    shots.take(page, "05_ran")
    entry = stage_entry(lab.run_dir, "embedding_viz")
    assert entry["status"] == "completed" and entry["finished"] > copied["embedding_viz"], entry
    maps_cell = panel.locator(".jp-CodeCell", has_text="embedding_viz.maps(")
    image = maps_cell.locator(".jp-OutputArea-output img[src^='data:image/png']")
    assert image.count() == 1, f"the UMAP cell shows {image.count()} PNG images"
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete", arg=image.element_handle())
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 0 and height > 0, "the UMAP image did not decode"
    assert width > 1.5 * height, f"{width}x{height}: expected the maps side by side"  # base | fine-tuned
    shots.take(image, "05_umap_image")
    page.close()

    # 03: train on the run's smoke config, then move the learning-rate slider and save.
    page, panel = open_notebook(browser, lab, "03_training.ipynb")
    shots.take(page, "03_opened")
    run_all_cells(page, panel, "03", shots)
    shots.take(page, "03_ran")
    entry = stage_entry(lab.run_dir, "training")
    assert entry["status"] == "completed" and entry["finished"] > copied["training"], entry
    assert stage_entry(lab.run_dir, "evaluation")["status"] == "pending"  # training ran again

    config_path = lab.run_dir / "config.yaml"
    config_before = yaml.safe_load(config_path.read_text())
    widget = panel.locator(".jp-OutputArea-output", has=page.locator(".widget-tab")).first  # the whole panel
    # Drawing the panel changes nothing: Save before touching it writes the same config.
    widget.locator("button.sttune-save-config").click()
    message = widget.locator(".sttune-panel-message")
    message.filter(has_text="Saved").wait_for()
    assert str(config_path.resolve()) in message.inner_text()
    config_text = config_path.read_text()
    assert yaml.safe_load(config_text) == config_before, "saving the untouched panel changed config.yaml"
    widget.locator(".lm-TabBar-tab", has_text="Optimisation").click()
    # Hovering a control's label shows its help (a dropdown's `tooltip` alone never reaches the page).
    expected_help = ConfigPanel(load_preset("smoke"), "pair_score").controls["train.batch_size"].tooltip
    label = widget.locator(f".{dom_class('train.batch_size')} .{HELP_CLASS}")
    label.hover()  # the pointer goes to the label's centre
    box = label.bounding_box()
    shown_help = page.evaluate(_TITLE_AT, [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert shown_help == expected_help, f"hovering the batch size label shows {shown_help!r}"
    assert widget.locator("[title='null']:visible").count() == 0, "a control without help shows title=null"
    shots.take(widget, "03_help_hovered")
    slider = widget.locator(f".{dom_class('train.learning_rate')}")
    readout = slider.locator(".widget-readout")
    shown_before = readout.inner_text().strip()
    assert float(shown_before) == pytest.approx(config_before["train"]["learning_rate"], rel=0.05)
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(4):  # four steps of 0.05 in log10: 2e-5 -> about 3.2e-5
        page.keyboard.press("ArrowRight")
    page.wait_for_function("([el, before]) => el.textContent.trim() !== before",
                           arg=[readout.element_handle(), shown_before])
    shown = readout.inner_text().strip()
    assert float(shown) > float(shown_before), f"the slider moved from {shown_before} to {shown}"
    shots.take(widget, "03_slider_moved")

    widget.locator("button.sttune-save-config").click()
    config_after = yaml.safe_load(wait_for_file_change(config_path, config_text))
    saved = config_after["train"]["learning_rate"]
    assert float(f"{saved:.1e}") == float(shown), f"config.yaml has {saved}, the slider shows {shown}"
    # Only the moved key changed.
    config_before["train"]["learning_rate"] = saved
    assert config_after == config_before
    shots.take(widget, "03_saved")

    # The session's writes land in the workspace: 03 saved from the page holds its outputs there.
    saved_notebook = json.loads(save_notebook(page, lab.notebooks / "03_training.ipynb"))
    assert any(cell.get("outputs") for cell in saved_notebook["cells"]), "the saved 03 has no outputs"
    page.close()
    # ... and the repository's notebooks, the templates, are as they were, with no checkpoints beside them.
    assert (lab.notebooks / "lab.yaml").is_file()
    after = repository_state()
    assert after["templates"] == lab.repository_before["templates"], "a lab session changed notebooks/"
    assert after["git status"] == lab.repository_before["git status"]
    assert after["checkpoints"] == lab.repository_before["checkpoints"], "new .ipynb_checkpoints in the repository"
