#!/usr/bin/env bash
# Installs what flatrpc needs on Debian 12 (idempotent) and optionally reserves hugepages.
#
#   scripts/setup.sh                 # packages only
#   scripts/setup.sh --hugepages 512 # also reserve 512 x 2 MiB pages and mount hugetlbfs
#
# Packages: DPDK 22.11 (library, headers, PMD plugins, dpdk-testpmd), clang/libclang for
# bindgen, pkg-config, iproute2 for namespaces/veth, tshark to read back pcaps, ethtool
# (veth offloads in relay topologies) and ping (reachability checks in tests).
set -euo pipefail

hugepages=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hugepages) hugepages="${2:?--hugepages needs a count}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo"
fi

packages=(dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config iproute2 tshark libpcap-dev
          build-essential ca-certificates curl procps ethtool iputils-ping haproxy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # tshark asks whether non-root users may capture; the default (no) is fine.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup.sh: Debian packages present"
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  # Debian 12's own rustc (1.63) is too old for the dependencies: use rustup's stable.
  echo "setup.sh: installing the Rust toolchain with rustup"
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt,clippy
  export PATH="$HOME/.cargo/bin:$PATH"
fi

pkg-config --exists libdpdk || { echo "setup.sh: libdpdk still not found by pkg-config" >&2; exit 1; }
echo "setup.sh: DPDK $(pkg-config --modversion libdpdk), $(cargo --version)"

if [ "$hugepages" -gt 0 ]; then
  echo "$hugepages" | $SUDO tee /proc/sys/vm/nr_hugepages >/dev/null
  $SUDO mkdir -p /dev/hugepages
  mountpoint -q /dev/hugepages || $SUDO mount -t hugetlbfs nodev /dev/hugepages
  echo "setup.sh: $(grep HugePages_Total /proc/meminfo)"
fi
