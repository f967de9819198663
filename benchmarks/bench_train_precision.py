"""Training speed in float32 and bfloat16 (``precision: bf16``) on this CPU: the same run
(R_18_FPN_tiny from scratch, synthetic 320x240 images, batch 2, AdamW, one seed) twice;
median seconds per step after the first ``WARMUP`` steps and the two loss curves.

Writes ``train_precision.json`` and ``train_precision_loss.png``. bf16 needs a CPU with
AVX512-BF16 or AMX (else torch emulates it, slowly); the table says which this one has.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 60
WARMUP = 10
IMAGES = 120


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return sorted({f for f in ("avx512_bf16", "amx_bf16") if f in text})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()

    from densepose_ros.training.config import DatasetEntry, SolverConfig, TrainConfig
    from densepose_ros.training.plotting import Series, line_chart
    from densepose_ros.training.trainer import read_metrics, train

    work = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    data = work / "synth"
    subprocess.run([sys.executable, "-m", "densepose_ros", "synth", "--num", str(IMAGES),
                    "--seed", "11", "--size", "320x240", "--out", str(data)], check=True,
                   capture_output=True)
    base = TrainConfig(
        model="R_18_FPN_tiny",
        datasets=[DatasetEntry(annotations=str(data / "annotations.json"), symmetry="anny")],
        solver=SolverConfig(optimizer="adamw", base_lr=1e-3, max_iter=args.steps,
                            warmup_iters=10, schedule="cosine"),
        batch_size=2, num_workers=0, seed=5, device="cpu", log_period=1,
        checkpoint_period=args.steps, preview_period=0)
    base.augmentation = dataclasses.replace(base.augmentation, min_sizes=(240, 272, 304),
                                            max_size=704, test_min_size=320)
    results, curves = {}, []
    for precision, color in (("fp32", (200, 80, 0)), ("bf16", (0, 120, 255))):
        cfg = dataclasses.replace(base, precision=precision, output_dir=str(work / precision))
        train(cfg, progress=False)
        rows = read_metrics(Path(cfg.output_dir) / "metrics.jsonl")
        step_s = statistics.median(r["seconds_per_iter"] for r in rows[WARMUP:])
        last = rows[-10:]
        results[precision] = {"median_s_per_step": step_s,
                              "mean_loss_last_10": statistics.mean(r["loss"] for r in last)}
        curves.append(Series(precision, color, [(r["iteration"], r["loss"]) for r in rows]))
    speedup = results["fp32"]["median_s_per_step"] / results["bf16"]["median_s_per_step"]
    machine = (f"{platform.machine()} {os.cpu_count()} cores "
               f"{' '.join(cpu_flags()) or 'no bf16 instructions'}")
    print(f"training step, R_18_FPN_tiny, batch 2, 240-304 px, median of steps "
          f"{WARMUP + 1}-{args.steps} (s); machine: {machine}")
    for precision, row in results.items():
        print(f"  {precision}: {row['median_s_per_step']:.3f} s/step, mean loss of the last "
              f"10 steps {row['mean_loss_last_10']:.3f}")
    print(f"  bf16 speed-up: {speedup:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_precision.json").write_text(json.dumps(
        {"machine": machine, "steps": args.steps, "results": results, "speedup": speedup},
        indent=2))
    line_chart(curves, args.out / "train_precision_loss.png",
               "training loss, fp32 vs bf16 (same seed and data)", log_y=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
