#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/end_to_end/test_browser.py); called by `make test`.
# Idempotent and never fatal: it returns at once when Chromium is there, installs chromium and
# chromium-driver with apt-get when it can (as root, or through sudo without a password), and
# otherwise says why not and exits 0, so that the test skips with that reason instead.
# STTUNE_INSTALL_BROWSER=0 leaves the system alone.
set -u

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "${STTUNE_INSTALL_BROWSER:-1}" = 0 ]; then
  echo "browser-setup: STTUNE_INSTALL_BROWSER=0: not installing chromium; the browser test will be skipped" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser-setup: no apt-get here: cannot install chromium; the browser test will be skipped" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "browser-setup: not root and no password-less sudo: cannot install chromium; the browser test will be skipped" >&2
  exit 0
fi

echo "browser-setup: installing chromium and chromium-driver with apt-get"
log="$(mktemp)"
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120)
if "${apt[@]}" update -qq >"$log" 2>&1 &&
   "${apt[@]}" install -y -qq --no-install-recommends chromium chromium-driver >>"$log" 2>&1; then
  echo "browser-setup: done ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"
else
  echo "browser-setup: apt-get failed; the browser test will be skipped. Its last lines:" >&2
  tail -n 5 "$log" >&2
fi
rm -f "$log"
exit 0
