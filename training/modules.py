"""ConvLLaVA in plain PyTorch, parameter names exactly as the official checkpoints store them.

- `ConvNextTower`: transformers' ConvNextModel (stem 4x4/s4 conv + channels-first LayerNorm; stage 1
  without downsampling; stages 2.. with LayerNorm + 2x2/s2 conv; blocks dwconv7 -> LayerNorm ->
  Linear 4C -> GELU (erf) -> Linear C -> layer scale -> residual; every LayerNorm eps 1e-6) plus the
  fifth stage ConvLLaVA appends (a ConvNextStage with stride 2). Its unused pooler norm `layernorm`
  (width of stage 4, as transformers builds it before the fifth stage is added) is kept for the layout.
- `Projector`: mlp2x_gelu, nn.Sequential(Linear, GELU, Linear) -> `model.mm_projector.{0,2}`.
- `Llama`: LlamaForCausalLM (RMSNorm, HF rotate-half RoPE, causal multi-head attention, SwiGLU MLP,
  final norm, lm_head tied to the embedding table when `tie` is set).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6


class ChannelsFirstLN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):  # [B, C, H, W]
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, EPS).permute(0, 3, 1, 2)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.patch_embeddings = nn.Conv2d(3, c, 4, 4)
        self.layernorm = ChannelsFirstLN(c)

    def forward(self, x):
        return self.layernorm(self.patch_embeddings(x))


class Block(nn.Module):
    def __init__(self, c, layer_scale=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.layernorm = nn.LayerNorm(c, eps=EPS)
        self.pwconv1 = nn.Linear(c, 4 * c)
        self.pwconv2 = nn.Linear(4 * c, c)
        self.layer_scale_parameter = nn.Parameter(torch.full((c,), layer_scale))

    def forward(self, x):  # [B, C, H, W]
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.layernorm(y))))
        return x + (self.layer_scale_parameter * y).permute(0, 3, 1, 2)


class Stage(nn.Module):
    def __init__(self, cin, cout, depth, downsample, layer_scale):
        super().__init__()
        self.downsampling_layer = nn.Sequential(ChannelsFirstLN(cin), nn.Conv2d(cin, cout, 2, 2)) if downsample else None
        self.layers = nn.Sequential(*[Block(cout, layer_scale) for _ in range(depth)])

    def forward(self, x):
        if self.downsampling_layer is not None:
            x = self.downsampling_layer(x)
        return self.layers(x)


class Encoder(nn.Module):
    def __init__(self, widths, depths, layer_scale):
        super().__init__()
        self.stages = nn.ModuleList(
            [Stage(widths[max(i - 1, 0)], widths[i], depths[i], i > 0, layer_scale) for i in range(len(widths))])


class ConvNextTower(nn.Module):
    def __init__(self, widths, depths, layer_scale=1e-6):
        super().__init__()
        self.embeddings = Embeddings(widths[0])
        self.encoder = Encoder(widths, depths, layer_scale)
        self.layernorm = nn.LayerNorm(widths[3], eps=EPS)  # pooler norm: stored, not used by ConvLLaVA

    def forward(self, pixels, return_stages=False):
        x = self.embeddings(pixels)
        stages = [x]
        for st in self.encoder.stages:
            x = st(x)
            stages.append(x)
        tokens = x.flatten(2).transpose(1, 2)  # [B, (R/64)^2, C5], row-major
        return (tokens, stages) if return_stages else tokens


class Projector(nn.Sequential):
    def __init__(self, cin, d):
        super().__init__(nn.Linear(cin, d), nn.GELU(), nn.Linear(d, d))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        v = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(v + self.eps))


def rope_cos_sin(n, dim, theta, dtype):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    f = torch.outer(torch.arange(n, dtype=torch.float32), inv)
    emb = torch.cat([f, f], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.h, self.hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        o = torch.softmax(s, -1) @ v
        return self.o_proj(o.transpose(1, 2).reshape(b, t, -1))


class Mlp(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, d, inter, heads, eps):
        super().__init__()
        self.input_layernorm = RMSNorm(d, eps)
        self.self_attn = Attention(d, heads)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.mlp = Mlp(d, inter)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, vocab, d, inter, layers, heads, eps):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([DecoderLayer(d, inter, heads, eps) for _ in range(layers)])
        self.norm = RMSNorm(d, eps)


class Llava(nn.Module):
    """The LLM + projector half of the checkpoint (the root safetensors): `model.*` and `lm_head` (tied)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg['vocab_size'], cfg['hidden_size'], cfg['intermediate_size'],
                                cfg['num_hidden_layers'], cfg['num_attention_heads'], cfg['rms_norm_eps'])
        self.model.mm_projector = Projector(cfg['mm_hidden_size'], cfg['hidden_size'])

    def hidden(self, emb):
        """Final-norm hidden states for inputs_embeds [B, T, D] (causal)."""
        t = emb.shape[1]
        hd = self.cfg['hidden_size'] // self.cfg['num_attention_heads']
        cos, sin = rope_cos_sin(t, hd, self.cfg['rope_theta'], emb.dtype)
        mask = torch.full((t, t), float('-inf'), dtype=emb.dtype).triu(1)
        x = emb
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.model.norm(x)

    def logits(self, h):
        return h @ self.model.embed_tokens.weight.t()

    def splice(self, ids_before, image_rows, ids_after):
        """inputs_embeds for one prompt: text embeddings with the projected image rows at <image>."""
        e = self.model.embed_tokens
        return torch.cat([e(ids_before), image_rows, e(ids_after)], 0)
