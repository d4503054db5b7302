#!/bin/sh
# Fetches a Debian package by name into the build tree's media cache and
# unpacks it, without installing it: fetch-media.sh CACHE_DIR PACKAGE [STAMP]
# Prints nothing on success; the unpacked tree is CACHE_DIR/PACKAGE/, and
# STAMP (for meson) is touched.
set -eu
cache=$(realpath -m "$1")
pkg=$2
stamp=${3:-}
[ -z "$stamp" ] || stamp=$(realpath -m "$stamp")
mkdir -p "$cache/debs"
dest="$cache/$pkg"
if [ -f "$dest/.unpacked" ]; then
  [ -z "$stamp" ] || touch "$stamp"
  exit 0
fi
cd "$cache/debs"
if ! ls "${pkg}"_*.deb >/dev/null 2>&1; then
  apt-get download "$pkg" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1 || true
    apt-get download "$pkg" >/dev/null || {
      echo "fetch-media: cannot download Debian package $pkg" >&2
      exit 1
    }
  }
fi
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$(ls -t "${pkg}"_*.deb | head -n 1)" "$dest"
# A metapackage (linux-image-amd64) holds only documentation: unpack the
# package it depends on into the same tree.
if [ -z "$(find "$dest" -type f -not -path "$dest/usr/share/*" | head -n 1)" ]; then
  dep=$(apt-cache depends "$pkg" | awk '/^ *Depends:/ {print $2; exit}')
  if [ -n "$dep" ]; then
    "$0" "$cache" "$dep"
    cp -a "$cache/$dep/." "$dest/"
  fi
fi
touch "$dest/.unpacked"
[ -z "$stamp" ] || touch "$stamp"
