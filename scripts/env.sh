# Sourced by the Makefile: the venv plus this package's colcon install, as a user would have
# after `source install/setup.bash` in a ROS 2 workspace.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# install/setup.bash refers to variables that may be unset; relax nounset while sourcing it.
set +u
# shellcheck disable=SC1091
source "$root/install/setup.bash"
