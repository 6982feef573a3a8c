"""The shapes world: seeded scenes, their pixels, and the questions with their answers.

A scene is a light canvas (160-512 px each side, one solid colour, each channel 190-255) with 1-3
filled objects: circle, square (axis-aligned) or triangle (pointing up), coloured red, green, blue or
yellow (each channel jittered by up to +-20), bounding-box side 18-35 % of the shorter canvas side,
inside the canvas, not overlapping, no two objects sharing both shape and colour. Saved as PNG or JPEG
(quality 90).

Pixels are rasterised by pixel centre (a pixel belongs to a shape when its centre (x+0.5, y+0.5) lies
inside it), with no antialiasing. `shapes/scene.ts` draws with the same rule, so the evaluation images
the TypeScript tool makes come from the same family as the training images.

The answers (also in shapes/scene.ts, the evaluation's answer key):
  How many shapes are there?      -> "One." / "Two." / "Three."
  What color is the {shape}?      -> "Red." ...         (asked when exactly one object has that shape)
  What shape is the {color} one?  -> "Circle." ...      (asked when exactly one object has that colour)
  Is there a {color} {shape}?     -> "Yes." / "No."
  Describe the image.             -> "A red circle, a blue square and a yellow triangle." (objects in a
                                     fixed order: by shape circle, square, triangle, then by colour
                                     red, green, blue, yellow)
"""
import io
import math
import random

import numpy as np
from PIL import Image

SHAPES = ['circle', 'square', 'triangle']
COLORS = ['red', 'green', 'blue', 'yellow']
RGB = {'red': (220, 40, 40), 'green': (40, 170, 60), 'blue': (40, 80, 220), 'yellow': (235, 200, 30)}
PAIRS = [(s, c) for s in SHAPES for c in COLORS]          # 12 (shape, colour) classes, this order
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
PAD_RGB = tuple(int(m * 255) for m in MEAN)              # (122, 116, 104): LLaVA's expand2square fill
GAP = 2                                                   # px kept free between two objects' boxes
COUNT_WORDS = ['One.', 'Two.', 'Three.']


def sample_scene(rng: random.Random) -> dict:
    while True:
        w, h = rng.randint(160, 512), rng.randint(160, 512)
        bg = [rng.randint(190, 255) for _ in range(3)]
        n = rng.randint(1, 3)
        pairs = rng.sample(PAIRS, n)
        m = min(w, h)
        lo, hi = math.ceil(0.18 * m), math.floor(0.35 * m)
        objs = []
        for shape, color in pairs:
            for _ in range(200):
                size = rng.randint(lo, hi)
                x, y = rng.randint(0, w - size), rng.randint(0, h - size)
                if all(x + size + GAP <= o['x'] or o['x'] + o['size'] + GAP <= x or
                       y + size + GAP <= o['y'] or o['y'] + o['size'] + GAP <= y for o in objs):
                    break
            else:
                break  # no room: draw the scene again
            rgb = [min(255, max(0, v + rng.randint(-20, 20))) for v in RGB[color]]
            objs.append({'shape': shape, 'color': color, 'x': x, 'y': y, 'size': size, 'rgb': rgb})
        if len(objs) == n:
            return {'width': w, 'height': h, 'background': bg, 'objects': objs,
                    'format': 'jpeg' if rng.random() < 0.5 else 'png'}


def shape_mask(shape: str, size: int) -> np.ndarray:
    """[size, size] bool: which pixels of the bounding box the shape covers (pixel-centre rule)."""
    c = np.arange(size, dtype=np.float64) + 0.5
    py, px = np.meshgrid(c, c, indexing='ij')
    if shape == 'square':
        return np.ones((size, size), bool)
    if shape == 'circle':
        r = size / 2
        return (px - r) ** 2 + (py - r) ** 2 <= r * r
    # triangle pointing up: apex (size/2, 0), base from (0, size) to (size, size)
    return (py <= size) & (np.abs(px - size / 2) <= py / 2)


def render(scene: dict) -> np.ndarray:
    img = np.empty((scene['height'], scene['width'], 3), np.uint8)
    img[:] = scene['background']
    for o in scene['objects']:
        m = shape_mask(o['shape'], o['size'])
        region = img[o['y']:o['y'] + o['size'], o['x']:o['x'] + o['size']]
        region[m] = o['rgb']
    return img


def encode(scene: dict, img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    if scene['format'] == 'jpeg':
        Image.fromarray(img).save(buf, format='JPEG', quality=90)
    else:
        Image.fromarray(img).save(buf, format='PNG')
    return buf.getvalue()


def preprocess_uint8(pil: Image.Image, size: int) -> np.ndarray:
    """LLaVA 'pad' + CLIPImageProcessor up to the uint8 stage: expand2square with the mean colour,
    shortest edge to `size` with PIL BICUBIC, center crop. Returns [size, size, 3] uint8."""
    pil = pil.convert('RGB')
    w, h = pil.size
    if w != h:
        s = max(w, h)
        sq = Image.new('RGB', (s, s), PAD_RGB)
        sq.paste(pil, ((s - w) // 2, (s - h) // 2))
        pil = sq
    if pil.size[0] != size:
        pil = pil.resize((size, size), resample=Image.BICUBIC)
    return np.asarray(pil, dtype=np.uint8)


def normalize(u8: np.ndarray) -> np.ndarray:
    """[..., H, W, 3] uint8 -> [..., 3, H, W] float32, as CLIPImageProcessor: x*(1/255) then (x-mean)/std in f32."""
    a = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    a = (a - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return np.moveaxis(a, -1, -3).copy()


def cell_targets(scene: dict, grid: int) -> np.ndarray:
    """[grid, grid, 12]: 1 where an object of that (shape, colour) has its box centre in that cell of the
    padded square image (the token grid of the vision tower). Training supervision for the tower only."""
    w, h = scene['width'], scene['height']
    s = max(w, h)
    ox, oy = (s - w) // 2, (s - h) // 2
    t = np.zeros((grid, grid, len(PAIRS)), np.float32)
    for o in scene['objects']:
        cx = (o['x'] + ox + o['size'] / 2) / s
        cy = (o['y'] + oy + o['size'] / 2) / s
        gx, gy = min(grid - 1, int(cx * grid)), min(grid - 1, int(cy * grid))
        t[gy, gx, PAIRS.index((o['shape'], o['color']))] = 1
    return t


def describe(objs: list) -> str:
    order = sorted(objs, key=lambda o: (SHAPES.index(o['shape']), COLORS.index(o['color'])))
    parts = [f"a {o['color']} {o['shape']}" for o in order]
    text = parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]
    return text[0].upper() + text[1:] + '.'


def questions(scene: dict, rng: random.Random) -> list:
    """(kind, question, answer) for every applicable question; yes/no: every present pair and as many
    absent ones (half of them sharing the shape or the colour of a present object, when possible)."""
    objs = scene['objects']
    out = [('count', 'How many shapes are there?', COUNT_WORDS[len(objs) - 1])]
    for shape in SHAPES:
        having = [o for o in objs if o['shape'] == shape]
        if len(having) == 1:
            out.append(('color', f'What color is the {shape}?', having[0]['color'].capitalize() + '.'))
    for color in COLORS:
        having = [o for o in objs if o['color'] == color]
        if len(having) == 1:
            out.append(('shape', f'What shape is the {color} one?', having[0]['shape'].capitalize() + '.'))
    present = {(o['shape'], o['color']) for o in objs}
    absent = [p for p in PAIRS if p not in present]
    near = [p for p in absent if any(p[0] == q[0] or p[1] == q[1] for q in present)]
    far = [p for p in absent if p not in near]
    negatives = []
    for i in range(len(present)):
        pool = near if (i % 2 == 0 and near) or not far else far
        negatives.append(pool.pop(rng.randrange(len(pool))))
    for s, c in sorted(present, key=PAIRS.index):
        out.append(('yesno', f'Is there a {c} {s}?', 'Yes.'))
    for s, c in negatives:
        out.append(('yesno', f'Is there a {c} {s}?', 'No.'))
    out.append(('describe', 'Describe the image.', describe(objs)))
    return out


def all_questions_and_answers():
    """Every question string and every answer string the task can produce (for the token table)."""
    qs = ['How many shapes are there?', 'Describe the image.']
    qs += [f'What color is the {s}?' for s in SHAPES]
    qs += [f'What shape is the {c} one?' for c in COLORS]
    qs += [f'Is there a {c} {s}?' for s, c in PAIRS]
    ans = COUNT_WORDS + [c.capitalize() + '.' for c in COLORS] + [s.capitalize() + '.' for s in SHAPES] + ['Yes.', 'No.']
    import itertools
    for n in (1, 2, 3):
        for combo in itertools.combinations(PAIRS, n):
            ans.append(describe([{'shape': s, 'color': c} for s, c in combo]))
    return qs, ans
