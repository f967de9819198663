#!/usr/bin/env bash
# Builds ROS 2 `launch` (launch, launch_xml, launch_yaml, launch_ros, osrf_pycommon, and the
# composition_interfaces messages launch_ros imports) from upstream source checkouts, for
# machines where ROS 2 comes from pip wheels and `launch` has none. Used by
# `make test-launch LAUNCH_SRC=DIR` to run test/test_launch_live.py.
#
#   scripts/launch_env.sh SRC OUT
#     SRC: a folder with git checkouts of github.com/ros2/launch, ros2/launch_ros,
#          osrf/osrf_pycommon and ros2/rcl_interfaces (folder names as the repositories)
#     OUT: where to build; OUT/env.sh then sets up a shell (after scripts/env.sh)
# Run inside the project's venv (the Makefile does). Nothing here is needed on a ROS 2
# installation, where `launch` is already importable.
set -euo pipefail
src="${1:?usage: scripts/launch_env.sh SRC OUT}"
out="${2:?usage: scripts/launch_env.sh SRC OUT}"
for repo in launch launch_ros osrf_pycommon rcl_interfaces; do
  [ -d "$src/$repo" ] || { echo "error: $src/$repo missing (a checkout of $repo)" >&2; exit 2; }
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
py="$(command -v python)"
echo "[launch_env] Python packages -> $out/site"
"$py" -m pip install -q --target "$out/site" --no-deps --no-build-isolation --upgrade \
  "$src/osrf_pycommon" "$src/launch/launch" "$src/launch/launch_xml" \
  "$src/launch/launch_yaml" "$src/launch_ros/launch_ros" 2>&1 | grep -E "^(ERROR|error)" || true
"$py" -c "import sys; sys.path.insert(0, '$out/site'); import launch, launch_xml"
echo "[launch_env] composition_interfaces -> $out/install"
# Same CMake setup as scripts/setup.sh (numpy headers reached through a link outside the tree).
numpy_link="${XDG_CACHE_HOME:-$HOME/.cache}/densepose_ros/launch_env_numpy_include"
mkdir -p "$(dirname "$numpy_link")"
ln -sfn "$("$py" -c 'import numpy; print(numpy.get_include())')" "$numpy_link"
(cd "$out" && CMAKE_PREFIX_PATH="$VIRTUAL_ENV" colcon --log-base log build \
  --paths "$src/rcl_interfaces/composition_interfaces" --build-base build \
  --install-base install --cmake-args -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF \
  -DPython3_NumPy_INCLUDE_DIR="$numpy_link" --event-handlers console_direct- summary+ \
  2>&1 | tail -2)
cat > "$out/env.sh" <<ENV
# Source after scripts/env.sh: ROS 2 launch built by scripts/launch_env.sh.
set +u
source "$out/install/local_setup.bash"
export PYTHONPATH="$out/site\${PYTHONPATH:+:\$PYTHONPATH}"
# launch_xml finds its grammar through the ament index that the packages installed here.
export AMENT_PREFIX_PATH="\$AMENT_PREFIX_PATH:$out/site"
ENV
echo "[launch_env] ready: source $out/env.sh"
