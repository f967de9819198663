# densepose_ros developer entry points. Everything installs from the project's own files.
#   make demo   - run the node on a real street scene (OpenCV's vtest.avi) and write results
#   make test   - lint + the whole test suite
#   make bench  - benchmarks (medians), written to bench_output/
#   make test-gpu - the CUDA/TensorRT tests (on a machine with an NVIDIA GPU)
#   make bench-gpu - TensorRT fp16/int8, onnxruntime-gpu and torch CUDA times (NVIDIA GPU)
#   make test-launch LAUNCH_SRC=DIR - the launch files under the real ROS 2 launch, built from
#       upstream checkouts in DIR (launch, launch_ros, osrf_pycommon, rcl_interfaces)
#   make default-model - reproduce models/densepose_default.pth (data, 4 training stages, eval; ~5.5 h)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# Run a command inside the venv with this package's colcon install sourced.
RUN := source scripts/env.sh &&
PYTEST_ARGS ?=

.PHONY: setup demo test test-gpu test-launch bench bench-gpu lint format clean default-model

setup:
	@scripts/setup.sh

demo: setup
	@$(RUN) python -m densepose_ros.tools.demo --out demo_output

lint: setup
	@$(RUN) ruff check . && echo "lint: ok"

# GPU tests are collected here too and skip with their reason on a machine without CUDA.
test: setup lint
	@$(RUN) DENSEPOSE_REQUIRE_ROS=1 python -m pytest $(PYTEST_ARGS)

# On a CUDA machine: the GPU extras, then only the GPU tests, where a skip is a failure.
# onnxruntime and onnxruntime-gpu install the same module: the CPU wheel goes first.
test-gpu: setup
	@$(RUN) pip uninstall -q -y onnxruntime && \
	  pip install -q -r requirements/gpu.txt -c requirements/torch.txt && \
	  DENSEPOSE_REQUIRE_GPU=1 python -m pytest -m gpu $(PYTEST_ARGS)

# The launch tests skip where `launch` is missing (pip-only ROS); here a skip is a failure.
test-launch: setup
	@$(RUN) scripts/launch_env.sh "$(LAUNCH_SRC)" .cache/launch_env && \
	  source .cache/launch_env/env.sh && \
	  DENSEPOSE_REQUIRE_LAUNCH=1 python -m pytest test/test_launch_live.py $(PYTEST_ARGS)

bench: setup
	@$(RUN) python benchmarks/run_all.py --out bench_output $(BENCH)

# On a CUDA machine: the GPU extras (as test-gpu), then every GPU backend timed.
bench-gpu: setup
	@$(RUN) pip uninstall -q -y onnxruntime && \
	  pip install -q -r requirements/gpu.txt -c requirements/torch.txt && \
	  python benchmarks/gpu_backends.py --out bench_output $(BENCH)

# RUN_DIR, STOP_AT, TRAIN_ARGS, STAGE2_ARGS and STAGE3_ARGS ("key=value ...") go to
# scripts/train_default_model.sh (command-line variables reach it through the environment).
default-model: setup
	@$(RUN) $(if $(RUN_DIR),RUN_DIR="$(RUN_DIR)") $(if $(STOP_AT),STOP_AT="$(STOP_AT)") \
	  TRAIN_ARGS="$(TRAIN_ARGS)" scripts/train_default_model.sh

format: setup
	@$(RUN) ruff check --fix . && ruff format .

clean:
	rm -rf build install log demo_output bench_output .pytest_cache .ruff_cache
