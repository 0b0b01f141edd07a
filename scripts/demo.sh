#!/usr/bin/env bash
# `make demo`: the whole product, offline, in a couple of minutes on a laptop CPU.
#   1. check the shipped digits spec (the per-layer table)
#   2. train it with PyTorch on scikit-learn's 8x8 digits (shipped with scikit-learn: no download)
#   3. the exported ONNX model, with its class labels in the metadata
#   4. run that ONNX model with ONNX Runtime on a few test digits (never seen in training) saved as .npy files
#   5. its accuracy on the whole test set
#   6. the int8 model train wrote beside it (--quantize int8): its accuracy, and its speed against fp32
# Outputs go to runs/demo (git-ignored); set DEMO_DIR to put them elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

CNNSPEC=.venv/bin/cnnspec
PY=.venv/bin/python
SPEC=specs/digits.yaml
OUT=${DEMO_DIR:-runs/demo}
EPOCHS=${DEMO_EPOCHS:-10}
export TF_CPP_MIN_LOG_LEVEL=2

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD="" PLAIN=""; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
START=$(date +%s)

step "1. Check the spec: $SPEC"
"$CNNSPEC" check "$SPEC"

step "2. Train it: PyTorch, scikit-learn digits, $EPOCHS epochs (the best epoch chosen on a validation split, reported on the test set), then int8"
"$CNNSPEC" train "$SPEC" --backend torch --data digits --epochs "$EPOCHS" --seed 0 --quantize int8 -o "$OUT"

step "3. The exported model: $OUT/model.onnx"
"$PY" - "$OUT/model.onnx" <<'EOF'
import json, sys
from cnnspec.onnxfile.boundary import metadata, read_model
model = read_model(sys.argv[1])
meta = metadata(model)
graph = model.graph
print(f"input  {graph.input[0].name}: {[d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]}")
print(f"output {graph.output[0].name}: {[d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]}")
print(f"opset {model.opset_import[0].version}, backend {meta['cnnspec.backend']}, "
      f"classes {json.loads(meta['cnnspec.classes'])}")
EOF

step "4. Run the ONNX model on a few test digits (never seen in training) (.npy files)"
rm -rf "$OUT/heldout"
"$PY" - "$SPEC" "$OUT/heldout" <<'EOF'
import sys
from pathlib import Path
import numpy as np
import cnnspec
from cnnspec.data.sources import load_source
data = load_source("digits", cnnspec.load(sys.argv[1]).graph)
out = Path(sys.argv[2]); out.mkdir(parents=True)
picks = range(8)  # the first eight test digits
for k, i in enumerate(picks):
    np.save(out / f"digit_{k}_true{data.y_test[i]}.npy", data.x_test[i])  # [1, 8, 8], values in [0, 1]
np.save(out / "all.npy", data.x_test)
np.save(out / "all_labels.npy", data.y_test)
print(f"saved {len(list(picks))} test digits to {out}/digit_*.npy; the whole test set ({len(data.y_test)}) to all.npy")
EOF
"$CNNSPEC" run "$OUT/model.onnx" --input "$OUT"/heldout/digit_*.npy --top 2

step "5. Accuracy of the ONNX model on all test digits"
"$CNNSPEC" run "$OUT/model.onnx" --input "$OUT/heldout/all.npy" --top 1 --json > "$OUT/heldout/predictions.json"
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
out = Path(sys.argv[1])
result = json.loads((out / "heldout" / "predictions.json").read_text())
truth = np.load(out / "heldout" / "all_labels.npy")
predicted = np.array([int(r["top"][0]["label"]) for r in result["results"]])
metrics = json.loads((out / "metrics.json").read_text())
wrong = np.flatnonzero(predicted != truth)
print(f"ONNX Runtime: {len(truth) - len(wrong)}/{len(truth)} correct = {np.mean(predicted == truth):.4f} "
      f"(training reported {metrics['test_accuracy']:.4f} at epoch {metrics['best_epoch']}, chosen by {metrics['selected_by']}; "
      f"{metrics['images_per_second']:.0f} images/s)")
if len(wrong):
    print("mistakes (true -> predicted): " + ", ".join(f"{truth[i]}->{predicted[i]}" for i in wrong[:12]))
print(f"files: {', '.join(sorted(p.name for p in out.iterdir() if p.is_file()))} in {out}")
EOF

step "6. The int8 model: its accuracy on the test digits, and its speed against fp32 (timed in one run)"
"$CNNSPEC" eval "$OUT/model.int8.onnx" --data digits | head -n 2
"$CNNSPEC" bench "$OUT/model.int8.onnx" --against "$OUT/model.onnx" --batch 1,32 --seconds 1

echo
echo "demo finished in $(( $(date +%s) - START ))s"
