#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) and install sttune into it.
# Idempotent: a second run with an unchanged pyproject.toml only checks and returns.
#
# The installer is uv (taken from PATH, or fetched once with pip into .tools/uv). On a slow 2-core
# machine pip took ~88 minutes for this set-up (unpacking and byte-compiling torch alone ~15 minutes);
# uv took ~6. Where uv cannot be had, pip does the same job. Byte-code is compiled lazily, on first
# import, instead of for every file of every package at install time.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${STTUNE_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# torch is installed first and on its own: here that takes the CPU build of 2.13.0 from the local
# wheel store (pip's find-links); elsewhere the normal PyPI build. A torch already in the venv
# (e.g. a CUDA build you installed yourself) is kept.
TORCH_SPEC="${STTUNE_TORCH_SPEC:-torch==2.13.0}"
INSTALLER="${STTUNE_INSTALLER:-uv}"   # uv or pip
TOOLS=.tools

stamp="$VENV/.sttune-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
# Installed-or-not is read from package metadata: importing torch costs minutes on a busy 2-core machine.
installed() { "$VENV/bin/python" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$1" 2>/dev/null; }
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed torch && installed sttune; then
  exit 0
fi

find_uv() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  if [ ! -x "$TOOLS/uv/bin/uv" ]; then
    echo "setup: fetching uv into $TOOLS/uv" >&2
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$TOOLS/uv" uv >&2 || return 1
  fi
  echo "$TOOLS/uv/bin/uv"
}

# pip's find-links (a local wheel store, where torch's CPU build lies here) carried over to uv.
pip_find_links() {
  if [ -n "${PIP_FIND_LINKS:-}" ]; then echo "$PIP_FIND_LINKS"; return; fi
  "$PYTHON" -m pip config get global.find-links 2>/dev/null || true
}

install_with_uv() {
  local uv="$1"
  local links
  links="$(pip_find_links)"
  if [ -n "$links" ]; then export UV_FIND_LINKS="${UV_FIND_LINKS:-$(echo "$links" | tr ' ' ',')}"; fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    # --seed puts pip into the venv too, for users who install more into it by hand.
    "$uv" venv --quiet --seed --python "$PYTHON" "$VENV"
  fi
  if ! installed torch; then
    echo "setup: installing $TORCH_SPEC"
    "$uv" pip install --quiet --python "$VENV/bin/python" "$TORCH_SPEC"
  fi
  echo "setup: installing sttune and its dependencies"
  "$uv" pip install --quiet --python "$VENV/bin/python" -e ".[dev]"
}

install_with_pip() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if ! installed torch; then
    echo "setup: installing $TORCH_SPEC"
    "$VENV/bin/python" -m pip install --quiet --no-compile "$TORCH_SPEC"
  fi
  echo "setup: installing sttune and its dependencies"
  "$VENV/bin/python" -m pip install --quiet --no-compile -e ".[dev]"
}

used=pip
if [ "$INSTALLER" = uv ] && uv="$(find_uv)"; then
  if install_with_uv "$uv"; then
    used=uv
  else
    echo "setup: uv failed; installing with pip instead" >&2
    install_with_pip
  fi
else
  install_with_pip
fi
# The Jupyter kernel lives inside the venv, not in the user's home.
"$VENV/bin/python" -m ipykernel install --sys-prefix --name sttune --display-name "Python (sttune)" >/dev/null
echo "$want" > "$stamp"
echo "setup: done with $used ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("torch", m.version("torch") + ", sentence-transformers", m.version("sentence-transformers"))'))"
