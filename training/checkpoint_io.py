"""safetensors read/write (the format is a JSON header and raw little-endian bytes; no package needed),
and the ConvLLaVA folder layout for the shapes model."""
import json
import os
import struct

import numpy as np
import torch

DTYPES = {'F16': (np.float16, torch.float16), 'F32': (np.float32, torch.float32), 'BF16': (None, torch.bfloat16)}


def save_safetensors(path, tensors, dtype=torch.float16):
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().to(dtype).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F16' if dtype == torch.float16 else 'F32',
                        'shape': list(tensors[name].shape), 'data_offsets': [off, off + len(a)]}
        chunks.append(a)
        off += len(a)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for c in chunks:
            f.write(c)


def load_safetensors(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        s, e = info['data_offsets']
        np_dtype = DTYPES[info['dtype']][0]
        out[name] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], np_dtype).copy()).reshape(info['shape'])
    return out


def load_folder(folder):
    """(llm state dict, tower state dict, root config, vision config) from a ConvLLaVA folder."""
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    vcfg = json.load(open(os.path.join(folder, 'vision_tower', 'config.json')))
    llm = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith('.safetensors'):
            llm.update(load_safetensors(os.path.join(folder, f)))
    tower = load_safetensors(os.path.join(folder, 'vision_tower', 'model.safetensors'))
    return llm, tower, cfg, vcfg
