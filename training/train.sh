#!/usr/bin/env bash
# npm run train:shapes — retrains models/convllava-shapes from scratch on this machine's CPU.
# Needs Debian's PyTorch and Pillow, and an optimised BLAS (Debian's torch links the reference BLAS
# otherwise, ~10x slower); the OpenMP build shares torch's threads instead of adding its own:
#   apt-get install python3-torch python3-pil libopenblas0-openmp
# Writes training/data/ (pre-generated images, ~6 GB, git-ignored) and the model folder; the learning
# curve goes to models/convllava-shapes/training-log.json. Extra arguments go to train_shapes.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE
exec /usr/bin/python3 training/train_shapes.py "$@"
