#!/usr/bin/env bash
# Extracts OpenCV's sample data (vtest.avi: a real street scene with pedestrians; photos
# without people used as synthetic-data backgrounds) from Debian's opencv-doc package into
# .cache/opencv_data/. Only the Debian registry is used. Idempotent: does nothing if present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/opencv_data"
if [ -f "$dest/vtest.avi" ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
if ! apt-get download opencv-doc >/dev/null 2>&1; then
  # Package lists may be missing on a fresh machine; refresh them once (needs root).
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download opencv-doc >/dev/null 2>&1 || {
    echo "error: could not download Debian's opencv-doc package (needed for sample data)" >&2
    exit 1
  }
fi
dpkg-deb -x opencv-doc_*.deb extracted
mkdir -p "$dest"
cp extracted/usr/share/doc/opencv-doc/examples/data/*.{avi,jpg,png} "$dest"/ 2>/dev/null || true
cp extracted/usr/share/doc/copyright "$dest"/ 2>/dev/null || true
cp extracted/usr/share/doc/opencv-doc/copyright "$dest"/COPYRIGHT 2>/dev/null || true
test -f "$dest/vtest.avi" || { echo "error: vtest.avi not found in opencv-doc" >&2; exit 1; }
echo "sample data extracted to $dest"
