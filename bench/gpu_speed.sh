#!/usr/bin/env bash
# The VAE's training speed on a GPU (run by hand where one is lent; CI has none):
#   1. the CUDA tests of the trainers' data path and guard
#   2. bench/bench_vae.py on the GPU: the bare loop against the zoo's trainers, batch 20 and 256
#   3. vae-mnist-burda's catalog recipe (Burda et al.'s model, dynamic binarization, batch 20) for STEPS steps
#      with each trainer: the rate that sets how long the paper's full schedule (9,774,400 steps) takes there
# Usage: bench/gpu_speed.sh MNIST_DIR [STEPS]   (default 20000)
set -uo pipefail
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1
data=$1 steps=${2:-20000}
start=$(date +%s)
section() { printf '\n== %s (%d s in)\n' "$1" $(($(date +%s) - start)); }

section "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

section "CUDA tests"
python -m pytest -q -p no:cacheprovider tests/test_batch_fetching.py tests/test_samplers.py -k "cuda"

section "bench_vae.py on the GPU"
python bench/bench_vae.py --data "$data" --device cuda --batch-sizes 20 256 --steps 2980 230 --repeats 2 --nll-k 0 \
  --sides bare plain accelerate plain-losses accelerate-losses

section "vae-mnist-burda's recipe, $steps steps"
for trainer in ${TRAINERS:-accelerate plain}; do
  zoo train vae-mnist-burda --data "$data" --steps "$steps" --trainer "$trainer" --out "/tmp/burda-$trainer" \
    --checkpoint-minutes 0 -q
  python - "$trainer" "/tmp/burda-$trainer/log.jsonl" <<'PY'
import json, sys
last = [json.loads(line) for line in open(sys.argv[2])][-1]
step_ms = 20 / last["samples_per_s"] * 1e3
print(f"{sys.argv[1]}: step {last['step']}, {last['samples_per_s']:.0f} images/s, {step_ms:.3f} ms a step; "
      f"the full schedule (9,774,400 steps) would take {9_774_400 * step_ms / 3.6e6:.2f} h")
PY
done
section "done"
