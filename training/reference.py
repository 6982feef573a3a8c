"""The PyTorch reference for a ConvLLaVA folder (plain PyTorch, training/modules.py): greedy answers and
golden activations, computed from the stored (f16) weights. Offline tool; inference never runs Python.

usage:
  python3 training/reference.py answer MODEL MANIFEST.json OUT.json [--dtype float32|float64]
      MANIFEST: {"items": [{"image": PATH, "input_ids": [... -200 ...]}, ...], "max_new_tokens": N}
      OUT: {"ids": [[...], ...], "margins": [min top1-top2 logit margin per item]}  (EOS not included)
  python3 training/reference.py golden MODEL MANIFEST.json OUT_PREFIX [--new-tokens 12]
      writes OUT_PREFIX.safetensors (float32 activations of each case, computed in float64) and
      OUT_PREFIX.json (ids, generated tokens, margins): the layout of spec/fixtures/convllava-tiny's golden.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint_io import load_folder, save_safetensors  # noqa: E402
from modules import ConvNextTower, Llava  # noqa: E402
from shapes_data import normalize, preprocess_uint8  # noqa: E402

IMAGE = -200


def load(model, dtype):
    llm_sd, tower_sd, cfg, vcfg = load_folder(model)
    tower = ConvNextTower(vcfg['hidden_sizes'], vcfg['depths'])
    tower.load_state_dict({k: v.float() for k, v in tower_sd.items()})
    llava = Llava(cfg)
    llava.load_state_dict({k: v.float() for k, v in llm_sd.items()})
    return tower.to(dtype).eval(), llava.to(dtype).eval(), cfg


def pixel_values(path, res):
    return torch.from_numpy(normalize(preprocess_uint8(Image.open(path), res)))[None]


@torch.no_grad()
def greedy(llava, rows, ids, n_new, eos):
    E = llava.model.embed_tokens
    k = ids.index(IMAGE)
    emb = llava.splice(torch.tensor(ids[:k]), rows, torch.tensor(ids[k + 1:]))[None]
    out, margins, first = [], [], None
    for _ in range(n_new):
        h = llava.hidden(emb)
        logits = llava.logits(h[0, -1])
        if first is None:
            first = (emb[0], h[0], logits)
        top = torch.topk(logits, 2)
        margins.append(float(top.values[0] - top.values[1]))
        nxt = int(top.indices[0])
        if nxt == eos:
            break
        out.append(nxt)
        emb = torch.cat([emb, E(torch.tensor([[nxt]]))], 1)
    return out, margins, first


@torch.no_grad()
def answer(args):
    dtype = getattr(torch, args.dtype)
    tower, llava, cfg = load(args.model, dtype)
    man = json.load(open(args.manifest))
    res = cfg['mm_vision_resolution']
    cache, ids_out, margins_out = {}, [], []
    for item in man['items']:
        if item['image'] not in cache:
            cache.clear()
            feats = tower(pixel_values(item['image'], res).to(dtype))
            cache[item['image']] = llava.model.mm_projector(feats[0])
        ids, margins, _ = greedy(llava, cache[item['image']], item['input_ids'], man.get('max_new_tokens', 24), cfg['eos_token_id'])
        ids_out.append(ids)
        margins_out.append(min(margins))
    json.dump({'ids': ids_out, 'margins': margins_out}, open(args.out, 'w'))


@torch.no_grad()
def golden(args):
    tower, llava, cfg = load(args.model, torch.float64)
    man = json.load(open(args.manifest))
    res = cfg['mm_vision_resolution']
    tensors, cases = {}, []
    for c, item in enumerate(man['items']):
        px = pixel_values(item['image'], res).double()
        tokens, stages = tower(px, return_stages=True)
        acts = {'stem': stages[0]}
        for i, s in enumerate(stages[1:]):
            acts[f'stage{i + 1}'] = s
        acts['image_features'] = tokens
        rows = llava.model.mm_projector(tokens[0])
        acts['projected'] = rows[None]
        gen, margins, (emb, hidden, logits) = greedy(llava, rows, item['input_ids'], args.new_tokens, cfg['eos_token_id'])
        acts.update({'inputs_embeds': emb[None], 'prefill_hidden': hidden, 'logits_last': logits})
        for k, v in acts.items():
            tensors[f'case{c}.{k}'] = v
        tensors[f'case{c}.generated'] = torch.tensor(gen, dtype=torch.float64)
        cases.append({'image': os.path.basename(item['image']), 'question': item.get('question'),
                      'input_ids': item['input_ids'], 'generated': gen, 'margins': margins})
    save_safetensors(args.out + '.safetensors', {k: v.float() for k, v in tensors.items()}, torch.float32)
    json.dump({'model': os.path.basename(os.path.normpath(args.model)), 'computed_in': 'float64 from the stored float16 weights',
               'cases': cases}, open(args.out + '.json', 'w'), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['answer', 'golden'])
    ap.add_argument('model')
    ap.add_argument('manifest')
    ap.add_argument('out')
    ap.add_argument('--dtype', default='float32', choices=['float32', 'float64'])
    ap.add_argument('--new-tokens', type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    (answer if args.mode == 'answer' else golden)(args)


if __name__ == '__main__':
    main()
