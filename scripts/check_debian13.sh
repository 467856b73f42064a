#!/usr/bin/env bash
# Runs `make test` and `make demo` on Debian 13 (trixie: QGIS 3.40 LTR, GDAL 3.10, Python 3.13,
# numpy 2) in a Debian 13 root made with debootstrap, from a clean checkout of this repository's
# HEAD. Too heavy for CI (QGIS from apt, torch from a registry, the whole suite and the demo);
# run it by hand, as root, on a Debian or Ubuntu machine that reaches Debian's mirror and PyPI:
#
#   sudo scripts/check_debian13.sh [ROOT]      # ROOT: where the Debian 13 tree lives
#   sudo CHECKS=test scripts/check_debian13.sh  # only make test (default: test demo)
#
# The tree (default /var/tmp/hsi-trixie/root) is made once and reused: its apt packages, its pip
# cache and the checkout's .venv survive between runs, so a second run only re-runs the checks.
# The checkout is refreshed to HEAD each run (uncommitted changes are not part of the check);
# ../shared is bind-mounted read-only beside it when it exists. Everything printed is also
# written to ROOT/../check_debian13.log. Exit status: that of the first failing step.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-${DEBIAN13_ROOT:-/var/tmp/hsi-trixie/root}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SHARED=${SHARED:-$(dirname "$REPO")/shared}
CHECKS=${CHECKS:-test demo}  # the make targets run after make install
LOG=$(dirname "$ROOT")/check_debian13.log
# What `make install` asks apt for, plus what the checks themselves use. Without recommends: the
# Makefile's own apt-get (with recommends) then finds them installed and adds nothing.
PACKAGES="qgis python3-qgis gdal-bin python3-gdal python3-venv make git ca-certificates"

[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, chroot and mount need it)" >&2; exit 1; }
mkdir -p "$ROOT"
exec > >(tee "$LOG") 2>&1

step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

if ! command -v debootstrap >/dev/null; then
  step "installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

if [ ! -f "$ROOT/etc/debian_version" ]; then
  step "debootstrap --variant=minbase trixie $ROOT"
  time debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
fi

MOUNTED=()
mount_once() {  # mount_once TARGET mount-arguments...
  local target=$1; shift
  mkdir -p "$target"
  if ! mountpoint -q "$target"; then mount "$@" "$target"; MOUNTED=("$target" "${MOUNTED[@]}"); fi
}
cleanup() {
  for target in "${MOUNTED[@]}"; do umount -l "$target" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_once "$ROOT/proc" -t proc proc
mount_once "$ROOT/sys" -t sysfs sysfs
mount_once "$ROOT/dev" --bind /dev
mount_once "$ROOT/dev/pts" --bind /dev/pts
mount_once "$ROOT/dev/shm" -t tmpfs tmpfs
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"

in_root() {  # a clean environment, as a login on that machine would have
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}

step "apt-get install $PACKAGES"
time in_root bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null"
# The certificate authorities this machine added locally (a TLS-inspecting proxy's, say), so that
# pip inside the tree trusts what pip outside it trusts.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi

step "clean checkout of $(git -C "$REPO" rev-parse --short HEAD) at /work/hsi-detect (the .venv is kept)"
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] || echo "note: uncommitted changes are not checked"
CHECKOUT="$ROOT/work/hsi-detect"
[ -d "$CHECKOUT/.git" ] || git clone -q --no-checkout "$REPO" "$CHECKOUT"
git -C "$CHECKOUT" fetch -q "$REPO" HEAD
git -C "$CHECKOUT" checkout -q -f FETCH_HEAD
git -C "$CHECKOUT" clean -q -fdx -e .venv
if [ -d "$SHARED" ]; then
  mount_once "$ROOT/work/shared" --bind -o ro "$SHARED"
fi

step "versions"
in_root bash -c 'echo "Debian $(cat /etc/debian_version)"; python3 --version;
  python3 -c "import numpy; from osgeo import gdal, gdal_array; print(\"numpy\", numpy.__version__, \"| GDAL\", gdal.__version__)";
  QT_QPA_PLATFORM=offscreen qgis_process.bin --version 2>/dev/null | grep -E "^(QGIS|Qt|Python|GDAL)"'

step "make install"
time in_root nice -n 10 make -C /work/hsi-detect install
in_root /work/hsi-detect/.venv/bin/python -c "import sys, numpy, torch; from osgeo import gdal; \
print('venv: Python', sys.version.split()[0], '| numpy', numpy.__version__, numpy.__file__, '| GDAL', gdal.__version__, \
'| torch', torch.__version__, '(CUDA build)' if torch.version.cuda else '(CPU build)')"
in_root cat /work/hsi-detect/.venv/constraints-numpy.txt

for check in $CHECKS; do
  step "make $check"
  time in_root nice -n 10 make -C /work/hsi-detect "$check"
done

step "Debian 13: make install, then make $CHECKS passed (log: $LOG)"
