#!/usr/bin/env bash
# The multi-task ablation of docs/training_and_evaluation.md: the bundled default model
# fine-tuned three ways with the same data, schedule and seed (no keypoints / a keypoint head
# / a keypoint head with cross-talk into the DensePose head), each evaluated on the held-out
# synthetic set (AP(GPS), AP(GPSm), keypoint AP).
#   scripts/ablation_keypoints.sh                 # about 1.5 h on 2 CPU cores (3 x 1200 steps, 3 evaluations)
#   STEPS=20 RUN_DIR=runs/x scripts/ablation_keypoints.sh   # quick plumbing check
# The keypoint variants start from the default model's weights: their keypoint head starts
# fresh and cross-talk inputs start at 0 (training/trainer.py: extended_state). Each stage is
# skipped when its output exists. Writes $RUN_DIR/ablation.md.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-runs/ablation}
DATA_DIR=runs/data  # where config/train/lite_synthetic.yaml reads the training set
STEPS=${STEPS:-1200}
SEED=${SEED:-0}

[[ -f "$DATA_DIR/synth_train/annotations.json" ]] || \
    densepose synth --num 4000 --seed 1 --out "$DATA_DIR/synth_train" --size 320x240
[[ -f "$DATA_DIR/synth_val/annotations.json" ]] || \
    densepose synth --num 200 --seed 987654 --out "$DATA_DIR/synth_val" --size 320x240

for model in R_18_FPN_tiny R_18_FPN_tiny_kp R_18_FPN_tiny_kp_xtalk; do
    out="$RUN_DIR/$model"
    if [[ ! -f "$out/model_final.pth" ]]; then
        resume=()
        [[ -f "$out/last.pth" ]] && resume=(--resume)
        # fine-tuning: half the from-scratch rate, a short warm-up, cosine to 0
        densepose train --config config/train/lite_synthetic.yaml "${resume[@]}" \
            "model=$model" init_weights=models/densepose_default.pth "seed=$SEED" \
            "solver.max_iter=$STEPS" solver.base_lr=0.0005 solver.warmup_iters=50 \
            "output_dir=$out"
    fi
    [[ -f "$out/eval.json" ]] || densepose eval --weights "$out/model_final.pth" \
        --data "$DATA_DIR/synth_val/annotations.json" --geodesics anny --point-frame 256 \
        --out "$out/eval.json"
done

python - "$RUN_DIR" "$STEPS" <<'PY'
import json, sys
from pathlib import Path

run_dir, steps = Path(sys.argv[1]), sys.argv[2]
rows = [("R_18_FPN_tiny", "no keypoints"), ("R_18_FPN_tiny_kp", "keypoint head"),
        ("R_18_FPN_tiny_kp_xtalk", "keypoint head + cross-talk")]
lines = [f"| model ({steps} fine-tuning steps) | AP(GPS) | AP(GPSm) | keypoint AP | box AP |",
         "|---|---|---|---|---|"]
for name, label in rows:
    report = json.loads((run_dir / name / "eval.json").read_text())
    kp = report["keypoints"].get("AP")
    lines.append(f"| {label} (`{name}`) | {report['AP_GPS']:.1f} | {report['AP_GPSm']:.1f} | "
                 f"{'-' if kp is None else f'{kp:.1f}'} | {report['box_AP']:.1f} |")
table = "\n".join(lines)
(run_dir / "ablation.md").write_text(table + "\n")
print(table)
PY
