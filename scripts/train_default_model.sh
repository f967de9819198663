#!/usr/bin/env bash
# Reproduce the bundled default model (models/MODEL_CARD.md) end to end: render the synthetic
# training and held-out sets, train stage 1 (config/train/lite_synthetic.yaml, from scratch),
# stage 2 (config/train/lite_synthetic_stage2.yaml, on from stage 1 with more data),
# stage 3 (config/train/lite_synthetic_stage3.yaml, on from stage 2 with more data again) and
# stage 4 (config/train/lite_synthetic_kp.yaml, stage 3 plus a keypoint head, trained jointly),
# export float16 weights and evaluate them.
#   make default-model    # the model card's runs (about 2 h + 1.5 h + 1 h + 0.75 h, 2 CPU cores)
#   make default-model RUN_DIR=runs/x TRAIN_ARGS="solver.max_iter=20" STOP_AT= \
#       STAGE2_ARGS="solver.max_iter=20" STAGE3_ARGS="solver.max_iter=20" \
#       STAGE4_ARGS="solver.max_iter=20"  # plumbing check
# Each stage is skipped when its output exists; an interrupted training resumes from its last
# checkpoint. The result is $RUN_DIR/densepose_default.pth and $RUN_DIR/eval.json; copy the
# weights to models/ to ship them.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=${RUN_DIR:-runs/default}
DATA_DIR=runs/data  # where config/train/lite_synthetic.yaml reads the training set
TRAIN_IMAGES=${TRAIN_IMAGES:-4000}
VAL_IMAGES=${VAL_IMAGES:-200}
TRAIN_ARGS=${TRAIN_ARGS:-}
STAGE2_ARGS=${STAGE2_ARGS:-}
STAGE2_IMAGES=${STAGE2_IMAGES:-8000}
STAGE3_ARGS=${STAGE3_ARGS:-}
STAGE3_IMAGES=${STAGE3_IMAGES:-8000}
STAGE4_ARGS=${STAGE4_ARGS:-}
# The step the shipped model was taken at (models/MODEL_CARD.md); empty: train to max_iter.
STOP_AT=${STOP_AT-8000}

render() {  # render OUT NUM SEED: a synthetic set, unless it is already complete
    if [[ ! -f "$1/annotations.json" ]]; then
        densepose synth --num "$2" --seed "$3" --out "$1" --size 320x240
    fi
}

render "$DATA_DIR/synth_train" "$TRAIN_IMAGES" 1
render "$DATA_DIR/synth_train2" "$STAGE2_IMAGES" 2
render "$DATA_DIR/synth_train3" "$STAGE3_IMAGES" 3
render "$DATA_DIR/synth_val" "$VAL_IMAGES" 987654

# A finished (or stopped) run resumes as a no-op; --stop-at ends at the shipped model's step.
resume=()
[[ -f "$RUN_DIR/last.pth" ]] && resume=(--resume)
stop=()
[[ -n "$STOP_AT" ]] && stop=(--stop-at "$STOP_AT")
# shellcheck disable=SC2086  # TRAIN_ARGS is a list of key=value words
densepose train --config config/train/lite_synthetic.yaml "${resume[@]}" "${stop[@]}" \
    "output_dir=$RUN_DIR" $TRAIN_ARGS

densepose train --export "$RUN_DIR/last.pth" "$RUN_DIR/stage1.pth"

# Stages 2, 3 and 4 each start from the previous stage's exported (float16) weights, as the
# shipped model did: on_from CONFIG INIT_WEIGHTS RUN EXPORT_TO EXTRA_ARGS.
on_from() {
    local resume=()
    [[ -f "$3/last.pth" ]] && resume=(--resume)
    # shellcheck disable=SC2086  # $5 is a list of key=value words
    densepose train --config "$1" "${resume[@]}" "init_weights=$2" "output_dir=$3" $5
    densepose train --export "$3/last.pth" "$4"
}
on_from config/train/lite_synthetic_stage2.yaml "$RUN_DIR/stage1.pth" "${RUN_DIR}_stage2" \
    "$RUN_DIR/stage2.pth" "$STAGE2_ARGS"
on_from config/train/lite_synthetic_stage3.yaml "$RUN_DIR/stage2.pth" "${RUN_DIR}_stage3" \
    "$RUN_DIR/stage3.pth" "$STAGE3_ARGS"
on_from config/train/lite_synthetic_kp.yaml "$RUN_DIR/stage3.pth" "${RUN_DIR}_kp" \
    "$RUN_DIR/densepose_default.pth" "$STAGE4_ARGS"

densepose eval --weights "$RUN_DIR/densepose_default.pth" \
    --data "$DATA_DIR/synth_val/annotations.json" --geodesics anny --point-frame 256 \
    --out "$RUN_DIR/eval.json"
echo "default model: $RUN_DIR/densepose_default.pth (metrics: $RUN_DIR/eval.json)"
