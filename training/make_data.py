"""Pre-generates the training images once, so training steps are pure compute.

usage: python3 training/make_data.py OUT.npz N FIRST_SEED [RESOLUTION]
Scene i is drawn by random.Random(FIRST_SEED + i), rendered, encoded as PNG or JPEG (quality 90),
decoded again with PIL, padded to square and resized exactly as inference does. Stores the uint8
pixels [N, R, R, 3], the per-cell targets of the tower and the scenes (JSON) for the questions.
"""
import io
import json
import random
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

sys.path.insert(0, __file__.rsplit('/', 1)[0])
from shapes_data import sample_scene, render, encode, preprocess_uint8, cell_targets  # noqa: E402


def one(args):
    seed, res = args
    scene = sample_scene(random.Random(seed))
    data = encode(scene, render(scene))
    u8 = preprocess_uint8(Image.open(io.BytesIO(data)), res)
    return u8, cell_targets(scene, res // 64), scene


def main():
    out, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    res = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    t0 = time.time()
    with Pool(2) as pool:
        rows = pool.map(one, [(first + i, res) for i in range(n)], chunksize=64)
    pixels = np.stack([r[0] for r in rows])
    cells = np.stack([r[1] for r in rows])
    scenes = json.dumps([r[2] for r in rows])
    np.savez(out, pixels=pixels, cells=cells, scenes=np.frombuffer(scenes.encode(), np.uint8))
    print(f'{n} images ({res}²) in {time.time() - t0:.1f} s -> {out}')


if __name__ == '__main__':
    main()
