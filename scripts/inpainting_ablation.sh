#!/usr/bin/env bash
# The paper's teacher for sparse annotations, measured (docs/training_and_evaluation.md):
# 1,000 rendered images whose exact dense labels are known; a student (the default model,
# same schedule and seed each time) trained on
#   sparse     the ~100 annotated points per person (what DensePose-COCO has),
#   inpainted  those points densified by the inpainting teacher (trained on the same points
#              and masks: densepose train-inpainter, densepose label --inpaint),
#   exact      the exact dense labels (the upper bound),
# each evaluated on the held-out synthetic set: AP(GPS), AP(GPSm).
#   scripts/inpainting_ablation.sh        # about 30 min on 2 CPU cores
# Each stage is skipped when its output exists. Writes runs/inpaint/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=runs/inpaint
mkdir -p "$OUT"
DATA=$OUT/synth_maps/annotations.json
[[ -f $DATA ]] || densepose synth --num 1000 --seed 31 --save-maps --out "$OUT/synth_maps"
[[ -f runs/data/synth_val/annotations.json ]] || \
    densepose synth --num 200 --seed 987654 --out runs/data/synth_val --size 320x240
[[ -f $OUT/inpainter.pth ]] || \
    densepose train-inpainter --data "$DATA" --out "$OUT/inpainter.pth" --steps 600 --batch 16
[[ -f $OUT/inpainted/annotations.json ]] || \
    densepose label "$DATA" --inpaint --teacher "$OUT/inpainter.pth" --out "$OUT/inpainted"

declare -A SETS=(
    [sparse]="[{annotations: $DATA, symmetry: anny}]"
    [inpainted]="[{annotations: $OUT/inpainted/annotations.json, type: distill, symmetry: anny}]"
    [exact]="[{annotations: $DATA, type: distill, symmetry: anny}]"
)
for arm in sparse inpainted exact; do
    if [[ ! -f $OUT/$arm/model_final.pth ]]; then
        resume=(); [[ -f $OUT/$arm/last.pth ]] && resume=(--resume)
        densepose train --config config/train/inpaint_ablation.yaml "${resume[@]}" \
            "datasets=${SETS[$arm]}" "output_dir=$OUT/$arm"
    fi
    [[ -f $OUT/$arm/eval.json ]] || densepose eval --weights "$OUT/$arm/model_final.pth" \
        --data runs/data/synth_val/annotations.json --geodesics anny --point-frame 256 \
        --out "$OUT/$arm/eval.json"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [("sparse", "sparse points only (~100 per person)"),
        ("inpainted", "points densified by the inpainting teacher"),
        ("exact", "exact dense labels (upper bound)")]
lines = ["| student trained on (600 steps from the default model) | AP(GPS) | AP(GPSm) | box AP |",
         "|---|---|---|---|"]
for name, label in rows:
    r = json.loads((out / name / "eval.json").read_text())
    lines.append(f"| {label} | {r['AP_GPS']:.1f} | {r['AP_GPSm']:.1f} | {r['box_AP']:.1f} |")
table = "\n".join(lines)
(out / "table.md").write_text(table + "\n")
print(table)
PY
