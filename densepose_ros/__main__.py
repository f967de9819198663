import sys

from densepose_ros.cli import main

sys.exit(main())
