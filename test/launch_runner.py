"""What `ros2 launch FILE name:=value ...` does, without ros2cli (no wheel here): include the
launch file (Python, XML or YAML) with those arguments and run it until SIGINT.

    python test/launch_runner.py launch/densepose.launch.xml camera:=/cam/ rviz:=true
"""

import sys


def main(argv: list[str]) -> int:
    from launch import LaunchDescription, LaunchService
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    path, *pairs = argv
    arguments = []
    for pair in pairs:
        name, sep, value = pair.partition(":=")
        if not sep:
            raise SystemExit(f"launch_runner: expected name:=value, got '{pair}'")
        arguments.append((name, value))
    service = LaunchService(argv=argv)
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        AnyLaunchDescriptionSource(path), launch_arguments=arguments)]))
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
