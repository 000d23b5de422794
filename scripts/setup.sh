#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install sttune into it.
# Idempotent: a second run with an unchanged pyproject.toml only checks and returns.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${STTUNE_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# torch is installed first and on its own: here that takes the CPU build of 2.13.0 from the local
# wheel store; elsewhere the normal PyPI build. A torch already in the venv (e.g. a CUDA build you
# installed yourself) is kept.
TORCH_SPEC="${STTUNE_TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.sttune-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
# Installed-or-not is read from package metadata: importing torch costs minutes on a busy 2-core machine.
installed() { "$PY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$1" 2>/dev/null; }
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed torch && installed sttune; then
  exit 0
fi

if ! installed torch; then
  echo "setup: installing $TORCH_SPEC"
  "$PY" -m pip install --quiet "$TORCH_SPEC"
fi
echo "setup: installing sttune and its dependencies"
"$PY" -m pip install --quiet -e ".[dev]"
# The Jupyter kernel lives inside the venv, not in the user's home.
"$PY" -m ipykernel install --sys-prefix --name sttune --display-name "Python (sttune)" >/dev/null
echo "$want" > "$stamp"
echo "setup: done ($("$PY" -c 'import importlib.metadata as m; print("torch", m.version("torch") + ", sentence-transformers", m.version("sentence-transformers"))'))"
