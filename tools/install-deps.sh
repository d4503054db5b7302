#!/bin/sh
# Installs what Vessel needs on Debian 12, by package name. Idempotent and
# non-interactive. `--test` adds what the test suite needs (oracles, guest
# build tools); `--bench` adds the benchmark peer (QEMU).
set -eu

build_pkgs="meson ninja-build pkg-config gcc libc6-dev libglib2.0-dev libjson-glib-dev zlib1g-dev liblzma-dev libzstd-dev liburing-dev libvncserver-dev libspice-server-dev libgtk-4-dev libadwaita-1-dev libvirt-glib-1.0-dev libxml2-dev libepoxy-dev libvte-2.91-gtk4-dev libosinfo-1.0-dev osinfo-db gettext seabios libslirp-dev"
test_pkgs="osinfo-db qemu-utils grub-pc-bin grub-common xorriso mtools binutils acpica-tools dmidecode tesseract-ocr tesseract-ocr-eng gvncviewer vncsnapshot spice-client-gtk virt-viewer xvfb xauth xdotool libjpeg-turbo-progs dbus-daemon libvirt-clients desktop-file-utils appstream libgl1-mesa-dri libegl-mesa0 libglx-mesa0 ipxe-qemu ovmf grub-efi-amd64-bin"
bench_pkgs="qemu-system-x86 hyperfine python3-gi gir1.2-spiceclientglib-2.0 e2fsprogs mount"

pkgs=$build_pkgs
for arg in "$@"; do
  case "$arg" in
    --test) pkgs="$pkgs $test_pkgs" ;;
    --bench) pkgs="$pkgs $test_pkgs $bench_pkgs" ;;
    *) echo "install-deps: unknown option '$arg' (use --test or --bench)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

missing=$(dpkg-query -W -f='${Package} ${Status}\n' $pkgs 2>/dev/null \
  | awk '$4 != "installed" {print $1}'; \
  for p in $pkgs; do dpkg-query -W "$p" >/dev/null 2>&1 || echo "$p"; done)
missing=$(echo "$missing" | sort -u | tr '\n' ' ')
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi
