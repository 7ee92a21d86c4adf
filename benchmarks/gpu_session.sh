#!/usr/bin/env bash
# One session on a lent GPU machine (docs/gpu-training.md): install the carried wheels and the project,
# decode there the files coded on the CPU machine (and code files to decode back here), then continue
# training the shipped variable-rate model on the GPU, exporting its weights to $OUT as it goes.
#
#   bash benchmarks/gpu_session.sh        # from the repository root, with .whl/ and runs/gpu/ carried
#
# MINUTES (training budget, default 6), BATCH (default 32), CROP (default 256), LR (default 2e-4), INIT
# (the model to continue, default vr3), ARCH (an architecture that extends INIT's, e.g.
# gained-checkerboard-hyperprior; default INIT's own), TRAIN_ARGS (more `codec train` options, e.g.
# "--M 320 --rate-bias 0.5 --synthetic 0.05 --downscale 0.3") and
# INSTALL=0 (use the codec already importable, for a dry run on the CPU) change what it does.
set -euo pipefail
REPO=$(pwd)
OUT=${OUT:?set OUT to the folder whose files come back}
MINUTES=${MINUTES:-6} BATCH=${BATCH:-32} CROP=${CROP:-256} LR=${LR:-2e-4} INIT=${INIT:-vr3}  # INIT: the shipped model to continue
export PYTHONUNBUFFERED=1 CODEC_HOME=/tmp/codec-home

if [ "${INSTALL:-1}" = 1 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site "$REPO"
  export PYTHONPATH=/tmp/site
  CODEC=(python3 /tmp/site/bin/codec)
else
  CODEC=(codec)
fi
cd /tmp  # the installed copy, not the source tree
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/machine.txt" 2>&1 || true
python3 -c "import torch, codec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'codec', codec.__version__)" >> "$OUT/machine.txt"

# What coded on the CPU machine decodes here to the same latents; then files coded here, to check there.
python3 "$REPO/benchmarks/cross_machine.py" check "$REPO/runs/gpu/cross-cpu" > "$OUT/cross-check.txt" 2>&1 || true
python3 "$REPO/benchmarks/cross_machine.py" encode /tmp/cross-gpu > /dev/null
tar -C /tmp -czf "$OUT/cross-gpu.tgz" cross-gpu

# Training: from the shipped weights, on the carried images, for MINUTES; weights exported every 2 minutes.
"${CODEC[@]}" train --data "$REPO/runs/gpu/train" --out /tmp/run.ckpt --init "$INIT" ${ARCH:+--arch "$ARCH"} --batch-size "$BATCH" --crop "$CROP" \
  --lr "$LR" --steps 1000000 --minutes "$MINUTES" --threads 8 --val "$REPO/runs/gpu/val" --val-every 1000 ${TRAIN_ARGS:-} \
  > "$OUT/train.out" 2>&1 &
trainer=$!
export_weights() {
  [ -f /tmp/run.ckpt ] || return 0
  "${CODEC[@]}" export /tmp/run.ckpt --name vr-gpu --force > /dev/null 2>> "$OUT/train.out" || return 0
  cp "$CODEC_HOME/models/vr-gpu.pt" "$CODEC_HOME/models/vr-gpu.json" "$OUT/"
  cp /tmp/run.log.jsonl "$OUT/vr-gpu.log.jsonl"
}
last=$SECONDS
while kill -0 "$trainer" 2> /dev/null; do
  sleep 5
  if (( SECONDS - last >= 120 )); then export_weights; last=$SECONDS; fi
done
wait "$trainer" || echo "training exited with status $?" >> "$OUT/train.out"
export_weights
