#!/usr/bin/env bash
# Installs a software Vulkan device (Mesa's lavapipe) so the WebGPU provider bundled in
# onnxruntime-node can run on CPU-only machines (tests/webgpu_*_test.ts; ../shared/PLATFORM.md,
# "GPU without a GPU"). Bookworm's own Mesa 22.3 is refused by Dawn, so mesa-vulkan-drivers comes
# from bookworm-backports (25.x), through a sources entry built from the machine's own Debian mirror.
# Idempotent and quiet: does nothing when libvulkan1 and a Mesa >= 24 Vulkan driver are present;
# never fails the CI run (without them the webgpu tests skip, saying so).
set -u
have() {
  local v
  dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q "ok installed" || return 1
  v="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null)" || return 1
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 24
}
if have; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_vulkan: no apt-get; the webgpu tests will be skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "install_vulkan: not root and no sudo; the webgpu tests will be skipped" >&2
    exit 0
  fi
fi
# The mirror this machine already uses (deb822 or one-line format), never a hard-coded host.
mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)"
if [ -z "$mirror" ]; then
  mirror="$(awk '/^deb / && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)"
fi
if [ -z "$mirror" ]; then
  echo "install_vulkan: no Debian mirror found in /etc/apt; the webgpu tests will be skipped" >&2
  exit 0
fi
list=/etc/apt/sources.list.d/arpo-bookworm-backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" | $SUDO tee "$list" >/dev/null
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null 2>&1 &&
  $SUDO apt-get install -y -qq libvulkan1 >/dev/null 2>&1 &&
  $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null 2>&1 && have; then
  echo "install_vulkan: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
else
  echo "install_vulkan: could not install libvulkan1 and mesa-vulkan-drivers from bookworm-backports; the webgpu tests will be skipped" >&2
fi
exit 0
