"""Everything but one build step is in pyproject.toml. The step: the wheel ships the stage notebooks
as sttune_helpers/notebooks/, copied at build time from the repository's notebooks/ (their only copy),
so that an installed sttune finds them with importlib.resources (runner/pipeline.py)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path("notebooks")  # setuptools builds from the project root


class BuildPyWithNotebooks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads notebooks/ in place
            return
        notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
        if not notebooks:
            raise SystemExit(f"no stage notebooks in {NOTEBOOKS.resolve()}: the wheel would not run")
        target = Path(self.build_lib) / "sttune_helpers" / "notebooks"
        self.mkpath(str(target))
        for notebook in notebooks:
            self.copy_file(str(notebook), str(target / notebook.name))


setup(cmdclass={"build_py": BuildPyWithNotebooks})
