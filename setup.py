"""pip install of the ROS-free core and the `densepose` tool (no messages, no node).

For users who only train, evaluate or export. The ROS 2 package (messages, node, launch
files) is built by colcon from package.xml/CMakeLists.txt instead.
"""

from setuptools import find_packages, setup

setup(
    name="densepose_ros",
    version="0.1.0",
    description="DensePose R-CNN for robots: model, training, export and ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["densepose_ros", "densepose_ros.*"]),
    package_data={"densepose_ros": ["assets/**/*", "export/*.json", "modeling/*.c"]},
    include_package_data=True,
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "torch",
        "torchvision",
        "pyyaml",
        "tqdm",
        "pycocotools",
        "scipy",
        "threadpoolctl",
    ],
    extras_require={
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "gpu": ["tensorrt", "onnxruntime-gpu"],
        "bags": ["rosbags"],
        "tracking-eval": ["motmetrics", "pandas"],
        "synth": ["anny"],
    },
    entry_points={"console_scripts": ["densepose = densepose_ros.cli:main"]},
)
