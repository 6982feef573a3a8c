"""Trains models/convllava-shapes: a micro ConvLLaVA that answers questions about the shapes world.

usage: python3 training/train_shapes.py [--out models/convllava-shapes] [--threads 2]
       (npm run train:shapes; needs Debian's python3-torch python3-pil libopenblas0-openmp)

Recipe (why: an end-to-end start learns only the answer prior; see the model card):
  0. data      30 000 training scenes (seeds 1 000 000 …) and 1 024 validation scenes (seeds 9 000 000 …),
               drawn, encoded (PNG or JPEG q90), decoded and preprocessed once (training/make_data.py).
  A. tower     the ConvNeXt (5 stages, 256² → 4×4 tokens) with a linear head on every token, trained to say
               which (shape, colour) objects have their centre in that token's cell (binary cross-entropy,
               horizontal flips). The head is dropped afterwards; it only exists to teach the tower.
  B. language  the tower is frozen (weights rounded to f16, as shipped) and its 16 tokens are computed once
               per image; the mlp2x_gelu projector and the LLaMA decoder learn the answers, loss on the
               answer tokens only, in the exact vicuna_v1 prompt. The 32000-way head is kept cheap: each
               step scores the tokens of the task's texts plus 1024 other tokens drawn at random.
               Phase 1: every kind, 6000 steps. Phase 2: two cosine cycles of 3000 steps with yes/no ten
               times as frequent (phase 1 leaves it at a constant answer).
Each segment saves its state under --data, so a run can resume at the next one (--resume-tower,
--resume-llm, --resume-cycle), continuing exactly where a single run would.
Everything is seeded; step counts are fixed, so a rerun gives the same model up to floating-point
reduction order in the CPU kernels.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checkpoint_io import save_safetensors  # noqa: E402
from modules import ConvNextTower, Llava  # noqa: E402
from shapes_data import MEAN, PAIRS, STD, normalize, questions  # noqa: E402

RES = 256
WIDTHS = [16, 32, 64, 128, 192]
DEPTHS = [1, 1, 2, 2, 2]
LLM = dict(vocab_size=32000, hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
           rms_norm_eps=1e-6, rope_theta=10000.0, mm_hidden_size=WIDTHS[-1])
KIND_WEIGHT = {'count': 1.0, 'color': 1.0, 'shape': 1.5, 'yesno': 2.0, 'describe': 1.5}
# Phase 2 of the language stage: the same mix with "Is there a …?" five times as frequent. Phase 1 learns
# every other kind but leaves yes/no at the prior (a constant answer, 50 %): the answer needs the colour
# AND the shape of the question matched against the image, the longest route the decoder has to learn.
KIND_WEIGHT_2 = {'count': 1.0, 'color': 1.0, 'shape': 1.5, 'yesno': 10.0, 'describe': 1.5}


def log(*a):
    print(time.strftime('%H:%M:%S'), *a, flush=True)


def load_split(path):
    d = np.load(path)
    return d['pixels'], d['cells'], json.loads(d['scenes'].tobytes().decode())


def lr_at(step, total, peak, warm):
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


# ---------------------------------------------------------------- stage A: the tower
def train_tower(tower, train, val, steps, batch, curve):
    pixels, cells, _ = train
    head = torch.nn.Linear(WIDTHS[-1], len(PAIRS))
    params = list(tower.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.05)
    g = np.random.default_rng(1)
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group['lr'] = lr_at(step, steps, 2e-3, 100)
        idx = g.integers(0, len(pixels), batch)
        x, y = pixels[idx], cells[idx]                      # [B,R,R,3] u8, [B,4,4,12]
        flip = g.random(batch) < 0.5
        x[flip] = x[flip][:, :, ::-1]
        y[flip] = y[flip][:, :, ::-1]
        tokens = tower(torch.from_numpy(normalize(x)))      # [B,16,C5]
        logits = head(tokens)
        loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y.reshape(batch, -1, len(PAIRS))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            msg = {'stage': 'tower', 'step': step, 'loss': round(loss.item(), 5), 'min': round((time.time() - t0) / 60, 2)}
            if step % 250 == 0 or step == steps - 1:
                msg['val_cell_exact'] = tower_accuracy(tower, head, val)
            curve.append(msg)
            log(json.dumps(msg))
    return head


@torch.no_grad()
def tower_accuracy(tower, head, val):
    pixels, cells = val[0][:512], val[1][:512]
    ok = 0
    for i in range(0, len(pixels), 64):
        p = head(tower(torch.from_numpy(normalize(pixels[i:i + 64])))) > 0
        t = torch.from_numpy(cells[i:i + 64].reshape(len(p), -1, len(PAIRS))) > 0.5
        ok += (p == t).flatten(1).all(1).sum().item()
    return round(ok / len(pixels), 4)


@torch.no_grad()
def features(tower, pixels):
    out = []
    for i in range(0, len(pixels), 64):
        out.append(tower(torch.from_numpy(normalize(pixels[i:i + 64]))))
    return torch.cat(out)


# ---------------------------------------------------------------- stage B: projector + LLM
class Batcher:
    """(image index, prompt-after-image ids, answer ids) samples, question kinds weighted."""

    def __init__(self, scenes, tokens, seed, weights=None):
        self.weights = weights or KIND_WEIGHT
        self.rng = random.Random(seed)
        self.scenes = scenes
        self.prompts = {q: ids for q, ids in tokens['prompts'].items()}
        self.answers = tokens['answers']

    def sample(self):
        i = self.rng.randrange(len(self.scenes))
        qa = questions(self.scenes[i], self.rng)
        kinds = sorted({k for k, _, _ in qa})
        kind = self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]
        _, q, a = self.rng.choice([x for x in qa if x[0] == kind])
        p = self.prompts[q]
        cut = p.index(-200)
        return i, p[cut + 1:], self.answers[a], kind


def prefixed_hidden(llava, prefix_emb, suffix_emb):
    """Final-norm hidden states of a batch that shares its first P positions: the prefix is computed
    once ([P, D]) and every sequence's suffix ([B, S, D]) attends to it and causally to itself. The same
    function as Llava.hidden on the concatenation, at a fraction of the cost."""
    from modules import rope_cos_sin, rotate_half
    cfg = llava.cfg
    P, (B, S, D) = prefix_emb.shape[0], suffix_emb.shape
    H = cfg['num_attention_heads']
    hd = D // H
    cos, sin = rope_cos_sin(P + S, hd, cfg['rope_theta'], suffix_emb.dtype)
    xp, xs = prefix_emb[None], suffix_emb
    mask_p = torch.full((P, P), float('-inf')).triu(1)
    mask_s = torch.cat([torch.zeros(S, P), torch.full((S, S), float('-inf')).triu(1)], 1)
    for layer in llava.model.layers:
        at = layer.self_attn

        def qkv(x, c, s):
            b, t, _ = x.shape
            q, k, v = (pr(x).view(b, t, H, hd).transpose(1, 2) for pr in (at.q_proj, at.k_proj, at.v_proj))
            return q * c + rotate_half(q) * s, k * c + rotate_half(k) * s, v

        hp, hs = layer.input_layernorm(xp), layer.input_layernorm(xs)
        qp, kp, vp = qkv(hp, cos[:P], sin[:P])
        qs, ks, vs = qkv(hs, cos[P:], sin[P:])
        op = torch.softmax(qp @ kp.transpose(-1, -2) / math.sqrt(hd) + mask_p, -1) @ vp
        K = torch.cat([kp.expand(B, -1, -1, -1), ks], 2)
        V = torch.cat([vp.expand(B, -1, -1, -1), vs], 2)
        os_ = torch.softmax(qs @ K.transpose(-1, -2) / math.sqrt(hd) + mask_s, -1) @ V
        xp = xp + at.o_proj(op.transpose(1, 2).reshape(1, P, D))
        xs = xs + at.o_proj(os_.transpose(1, 2).reshape(B, S, D))
        xp = xp + layer.mlp(layer.post_attention_layernorm(xp))
        xs = xs + layer.mlp(layer.post_attention_layernorm(xs))
    return llava.model.norm(xs)


def make_batch(llava, feats, batcher, n, prefix_ids):
    samples = [batcher.sample() for _ in range(n)]
    S = 16 + max(len(p) + len(a) for _, p, a, _ in samples)
    E = llava.model.embed_tokens
    rows = llava.model.mm_projector(feats[torch.tensor([s[0] for s in samples])])   # [B,16,D]
    ids = torch.zeros(n, S - 16, dtype=torch.long)
    target = torch.full((n, S), -1, dtype=torch.long)
    for b, (_, p, a, _) in enumerate(samples):
        seq = p + a
        ids[b, :len(seq)] = torch.tensor(seq)
        # position 16 + j predicts seq[j + 1]; the answer starts at seq[len(p)]
        for j in range(len(p) - 1, len(seq) - 1):
            target[b, 16 + j] = seq[j + 1]
    suffix = torch.cat([rows, E(ids)], 1)
    return E(torch.tensor(prefix_ids)), suffix, target, samples


def train_llm(llava, feats, val_feats, train_scenes, val_scenes, tokens, steps, batch, curve,
              weights=KIND_WEIGHT, peak=2e-3, seed=2, stage='llm'):
    prompt0 = next(iter(tokens['prompts'].values()))
    prefix_ids = prompt0[:prompt0.index(-200)]
    text_ids = sorted({i for p in tokens['prompts'].values() for i in p if i >= 0} |
                      {i for a in tokens['answers'].values() for i in a})
    opt = torch.optim.AdamW(llava.parameters(), lr=peak, weight_decay=0.01)
    batcher = Batcher(train_scenes, tokens, seed=seed, weights=weights)
    g = torch.Generator().manual_seed(seed + 1)
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group['lr'] = lr_at(step, steps, peak, 100)
        pre, suf, target, _ = make_batch(llava, feats, batcher, batch, prefix_ids)
        h = prefixed_hidden(llava, pre, suf)
        sel = target >= 0
        hsel, tsel = h[sel], target[sel]
        others = torch.randint(0, LLM['vocab_size'], (1024,), generator=g)
        cand = torch.unique(torch.cat([torch.tensor(text_ids), others]))
        logits = hsel @ llava.model.embed_tokens.weight[cand].t()
        loss = F.cross_entropy(logits, torch.searchsorted(cand, tsel))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llava.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            msg = {'stage': stage, 'step': step, 'loss': round(loss.item(), 5), 'min': round((time.time() - t0) / 60, 2)}
            if step % 250 == 0 or step == steps - 1:
                msg['val_teacher_forced'] = llm_accuracy(llava, val_feats, val_scenes, tokens, prefix_ids)
            curve.append(msg)
            log(json.dumps(msg))


@torch.no_grad()
def llm_accuracy(llava, feats, scenes, tokens, prefix_ids, n=512):
    """Teacher-forced: the fraction of answers whose every token is the full-vocabulary argmax, per kind."""
    batcher = Batcher(scenes, tokens, seed=4)
    ok, tot = {}, {}
    for _ in range(n // 128):
        pre, suf, target, samples = make_batch(llava, feats, batcher, 128, prefix_ids)
        h = prefixed_hidden(llava, pre, suf)
        sel = target >= 0
        hit = torch.ones_like(target, dtype=torch.bool)
        hit[sel] = llava.logits(h[sel]).argmax(-1) == target[sel]
        good = hit.all(1)
        for b, s in enumerate(samples):
            ok[s[3]] = ok.get(s[3], 0) + int(good[b])
            tot[s[3]] = tot.get(s[3], 0) + 1
    return {k: round(ok[k] / tot[k], 3) for k in sorted(tot)}


# ---------------------------------------------------------------- export
def round_f16_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def export(out, tower, llava, curve, minutes):
    os.makedirs(os.path.join(out, 'vision_tower'), exist_ok=True)
    sd = {k: v for k, v in llava.state_dict().items()}
    save_safetensors(os.path.join(out, 'model.safetensors'), sd)
    save_safetensors(os.path.join(out, 'vision_tower', 'model.safetensors'), tower.state_dict())
    cfg = {
        'architectures': ['LlavaLlamaForCausalLM'], 'model_type': 'llava_llama',
        'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': 0, 'hidden_act': 'silu',
        'hidden_size': LLM['hidden_size'], 'intermediate_size': LLM['intermediate_size'],
        'initializer_range': 0.02, 'max_position_embeddings': 1024,
        'num_attention_heads': LLM['num_attention_heads'], 'num_hidden_layers': LLM['num_hidden_layers'],
        'num_key_value_heads': LLM['num_attention_heads'], 'rms_norm_eps': LLM['rms_norm_eps'],
        'rope_scaling': None, 'rope_theta': LLM['rope_theta'], 'tie_word_embeddings': True,
        'torch_dtype': 'float16', 'use_cache': True, 'vocab_size': LLM['vocab_size'], 'attention_bias': False,
        'pretraining_tp': 1, 'image_aspect_ratio': 'pad', 'mm_hidden_size': WIDTHS[-1],
        'mm_projector_type': 'mlp2x_gelu', 'mm_use_im_patch_token': False, 'mm_use_im_start_end': False,
        'mm_vision_select_layer': -1, 'mm_vision_tower': 'vision_tower', 'mm_vision_resolution': RES,
        'vision_add_five_stage': DEPTHS[4], 'vision_five_stage_width': WIDTHS[4],
        'tune_mm_mlp_adapter': False, 'tokenizer_model_max_length': 1024, 'tokenizer_padding_side': 'right',
    }
    vcfg = {
        'architectures': ['ConvNextModel'], 'model_type': 'convnext', 'num_channels': 3, 'patch_size': 4,
        'num_stages': 5, 'hidden_sizes': WIDTHS, 'depths': DEPTHS, 'hidden_act': 'gelu',
        'initializer_range': 0.02, 'layer_norm_eps': 1e-12, 'layer_scale_init_value': 1e-6, 'drop_path_rate': 0.0,
        'image_size': RES, 'stage_names': ['stem', 'stage1', 'stage2', 'stage3', 'stage4', 'stage5'],
        'out_features': ['stage5'], 'out_indices': [5],
    }
    pre = {
        'crop_size': {'height': RES, 'width': RES}, 'do_center_crop': True, 'do_convert_rgb': True,
        'do_normalize': True, 'do_rescale': True, 'do_resize': True, 'image_mean': MEAN, 'image_std': STD,
        'image_processor_type': 'CLIPImageProcessor', 'resample': 3, 'rescale_factor': 1 / 255,
        'size': {'shortest_edge': RES},
    }
    for path, obj in [('config.json', cfg), ('vision_tower/config.json', vcfg),
                      ('vision_tower/preprocessor_config.json', pre),
                      ('generation_config.json', {'bos_token_id': 1, 'eos_token_id': 2, 'pad_token_id': 0, 'max_length': 1024})]:
        with open(os.path.join(out, path), 'w') as f:
            json.dump(obj, f, indent=2)
            f.write('\n')
    with open(os.path.join(out, 'training-log.json'), 'w') as f:
        json.dump({'minutes': round(minutes, 1), 'curve': curve}, f, indent=1)
        f.write('\n')


def load_segment(path, key, module):
    """Restores a module saved by save_segment; returns the learning curve up to that point."""
    saved = torch.load(path)
    module.load_state_dict(saved[key])
    log('resumed from', path)
    return saved['curve']


def save_segment(path, key, module, curve):
    torch.save({key: module.state_dict(), 'curve': curve}, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(HERE, '..', 'models', 'convllava-shapes'))
    ap.add_argument('--data', default=os.path.join(HERE, 'data'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--tower-steps', type=int, default=1500)
    ap.add_argument('--llm-steps', type=int, default=6000)
    ap.add_argument('--llm-steps-2', type=int, default=3000, help='phase 2: yes/no-weighted mix')
    ap.add_argument('--llm2-cycles', type=int, default=2, help='phase 2: cosine cycles of --llm-steps-2 steps')
    ap.add_argument('--resume-cycle', type=int, help='continue after this phase-2 cycle of an earlier run')
    ap.add_argument('--resume-tower', action='store_true', help='reuse data/tower.pt from an earlier run')
    ap.add_argument('--resume-llm', action='store_true', help='start at phase 2 from data/llm-phase1.pt of an earlier run')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_start = time.time()
    os.makedirs(args.data, exist_ok=True)
    for name, n, seed in [('train', 30000, 1_000_000), ('val', 1024, 9_000_000)]:
        path = os.path.join(args.data, f'{name}.npz')
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(HERE, 'make_data.py'), path, str(n), str(seed), str(RES)], check=True)
    train, val = load_split(os.path.join(args.data, 'train.npz')), load_split(os.path.join(args.data, 'val.npz'))
    tokens = json.load(open(os.path.join(HERE, 'tokens.json')))
    curve = []
    tower = ConvNextTower(WIDTHS, DEPTHS, layer_scale=0.5)
    tower_path = os.path.join(args.data, 'tower.pt')
    if args.resume_tower and os.path.exists(tower_path):
        curve = load_segment(tower_path, 'tower', tower)
    else:
        log(f'stage A: tower {WIDTHS} {DEPTHS}, {sum(p.numel() for p in tower.parameters())} parameters')
        train_tower(tower, train, val, args.tower_steps, 32, curve)
        save_segment(tower_path, 'tower', tower, curve)
    tower.eval()
    round_f16_(tower)
    for p in tower.parameters():
        p.requires_grad_(False)
    log('stage B: tower features')
    feats, val_feats = features(tower, train[0]), features(tower, val[0])
    torch.manual_seed(5)
    llava = Llava(LLM)
    with torch.no_grad():
        for name, p in llava.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.02)
    llm_path = os.path.join(args.data, 'llm-phase1.pt')
    if args.resume_llm:
        curve = load_segment(llm_path, 'llava', llava)
    else:
        log(f'stage B: projector + LLM, {sum(p.numel() for p in llava.parameters())} parameters')
        train_llm(llava, feats, val_feats, train[2], val[2], tokens, args.llm_steps, 64, curve)
        round_f16_(llava)
        save_segment(llm_path, 'llava', llava, curve)
    # Phase 2: cosine cycles (warm restarts) of the yes/no-weighted mix, each from the f16-rounded result of
    # the one before; every cycle's result is kept so a run can resume at the next cycle.
    cycle_path = lambda c: os.path.join(args.data, f'llm-phase2-cycle{c}.pt')  # noqa: E731
    first = 0
    if args.resume_cycle is not None:
        curve = load_segment(cycle_path(args.resume_cycle), 'llava', llava)
        first = args.resume_cycle + 1
    for cycle in range(first, args.llm2_cycles):
        log(f'stage B, phase 2 cycle {cycle}: yes/no-weighted')
        train_llm(llava, feats, val_feats, train[2], val[2], tokens, args.llm_steps_2, 64, curve,
                  weights=KIND_WEIGHT_2, peak=1e-3, seed=12 + 10 * cycle, stage=f'llm2.{cycle}')
        round_f16_(llava)
        save_segment(cycle_path(cycle), 'llava', llava, curve)
    export(args.out, tower, llava, curve, (time.time() - t_start) / 60)
    log(f'done in {(time.time() - t_start) / 60:.1f} min -> {args.out}')


if __name__ == '__main__':
    main()
