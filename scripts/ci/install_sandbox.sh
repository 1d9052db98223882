#!/usr/bin/env bash
# Installs bubblewrap, the python tool's preferred sandbox (src/tools/sandbox.ts; docs/SECURITY.md).
# Idempotent and quiet: does nothing when bwrap is present; never fails the CI run (without it
# the tools fall back to the `unshare` mechanism, and the bwrap-only tests skip, saying so).
set -u
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_sandbox: not root and no sudo; the sandboxed tests will be skipped" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 ||
  { $SUDO apt-get update -qq >/dev/null 2>&1 &&
    $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; then
  echo "install_sandbox: $(bwrap --version 2>/dev/null || echo bubblewrap installed)"
else
  echo "install_sandbox: could not install bubblewrap; the sandboxed tests will be skipped" >&2
fi
exit 0
