"""BigGAN generator and discriminator (Brock et al., ICLR 2019) in DGP's configuration.

The layout follows BigGAN-PyTorch as the Deep Generative Prior code (Pan et al., ECCV 2020)
uses it: a shared class embedding, hierarchical z (one chunk per block plus one for the
first linear), conditional batch norm with *stored* (running) statistics, one self-attention
layer, and spectral norm on every conv/linear exactly as the official ``eval()`` forward
applies it (see :func:`sn_sigma`). DGP adds an instance-norm switch (``use_in``) to every
GBlock, whose affine values are set from the first ``use_in`` forward (see
:meth:`BigGANGenerator.__call__`).

Layouts: activations NHWC, conv kernels HWIO, linear kernels ``[in, out]``, images NHWC in
[-1, 1]. Parameter names mirror the state_dict: module ``blocks_3_1`` is ``blocks.3.1``,
``output_layer_2`` is ``output_layer.2``; every spectral-normed layer carries ``u0``
(``[out]``, the stored left singular vector estimate), never updated here. Everything,
including ``u0`` and the BN running statistics, lives in the ``params`` collection so that a
model is one tree (morphing interpolates all of it); :func:`trainable_mask` says which
leaves DGP optimises.

References:
  Brock, Donahue, Simonyan, Large Scale GAN Training for High Fidelity Natural Image
  Synthesis, https://arxiv.org/abs/1809.11096
  Pan et al., Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation, https://arxiv.org/abs/2003.13659
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn
from jax import lax

from jaxinv.models import layers as L

__all__ = ["BigGANConfig", "BigGANGenerator", "BigGANDiscriminator", "DiscriminatorConfig",
           "sn_sigma", "infer_config", "infer_discriminator_config", "trainable_mask",
           "param_group", "num_param_groups"]


# ----------------------------------------------------------------------------- configs


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
  """Architecture of a BigGAN generator (BigGAN-PyTorch ``Generator`` with ``G_shared``, ``hier``)."""
  resolution: int = 128         # output size: 128 (5 blocks) or 256 (6 blocks), or any 4*2^n
  in_channels: tuple = (1536, 1536, 768, 384, 192)   # GBlock input widths, block 0 first
  out_channels: tuple = (1536, 768, 384, 192, 96)    # GBlock output widths
  dim_z: int = 120              # effective z size: z_chunk * (num_blocks + 1)
  shared_dim: int = 128         # class-embedding size
  n_classes: int = 1000
  attention: tuple = (64,)      # output resolutions after which a self-attention layer sits
  bottom_width: int = 4         # spatial size of the first linear's output
  sn_eps: float = 1e-6          # F.normalize eps of the spectral-norm power iteration
  bn_eps: float = 1e-5

  def __post_init__(self):
    object.__setattr__(self, "in_channels", tuple(int(c) for c in self.in_channels))
    object.__setattr__(self, "out_channels", tuple(int(c) for c in self.out_channels))
    object.__setattr__(self, "attention", tuple(int(c) for c in self.attention))
    if len(self.in_channels) != len(self.out_channels):
      raise ValueError("in_channels and out_channels must have one entry per block")
    if self.dim_z % (self.num_blocks + 1):
      raise ValueError(f"dim_z {self.dim_z} is not a multiple of num_blocks + 1 = "
                       f"{self.num_blocks + 1} (DGP truncates it to z_chunk * num_slots)")
    if self.bottom_width * 2 ** self.num_blocks != self.resolution:
      raise ValueError(f"{self.num_blocks} blocks from {self.bottom_width}px do not reach "
                       f"{self.resolution}px")

  @property
  def num_blocks(self) -> int:
    return len(self.in_channels)

  @property
  def num_slots(self) -> int:
    return self.num_blocks + 1

  @property
  def z_chunk(self) -> int:
    return self.dim_z // self.num_slots

  @property
  def cond_dim(self) -> int:
    """Input size of every conditional-BN linear: ``shared_dim + z_chunk``."""
    return self.shared_dim + self.z_chunk

  def block_resolution(self, i: int) -> int:
    """Output resolution of GBlock ``i``."""
    return self.bottom_width * 2 ** (i + 1)

  def has_attention(self, i: int) -> bool:
    return self.block_resolution(i) in self.attention

  @classmethod
  def dgp_128(cls, ch: int = 96, **kw) -> "BigGANConfig":
    """DGP's ``G_ema_128.pth`` (ch 96) at 128 px."""
    m = (16, 16, 8, 4, 2, 1)
    return cls(128, tuple(ch * c for c in m[:-1]), tuple(ch * c for c in m[1:]), **kw)

  @classmethod
  def dgp_256(cls, ch: int = 96, **kw) -> "BigGANConfig":
    """DGP's ``G_ema_256.pth`` (ch 96) at 256 px; dim_z 120 truncated to 119 = 7 x 17."""
    m = (16, 16, 8, 8, 4, 2, 1)
    kw.setdefault("dim_z", 119)
    return cls(256, tuple(ch * c for c in m[:-1]), tuple(ch * c for c in m[1:]), **kw)


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  """Architecture of a BigGAN discriminator (``D_wide``: hidden width = output width)."""
  resolution: int = 128
  in_channels: tuple = (3, 96, 192, 384, 768, 1536)
  out_channels: tuple = (96, 192, 384, 768, 1536, 1536)
  downsample: tuple = (True, True, True, True, True, False)
  n_classes: int = 1000
  attention: tuple = (64,)      # output resolutions after which a self-attention layer sits
  sn_eps: float = 1e-6

  def __post_init__(self):
    for f in ("in_channels", "out_channels", "attention"):
      object.__setattr__(self, f, tuple(int(c) for c in getattr(self, f)))
    object.__setattr__(self, "downsample", tuple(bool(d) for d in self.downsample))

  @property
  def num_blocks(self) -> int:
    return len(self.in_channels)

  def block_resolution(self, i: int) -> int:
    return self.resolution // 2 ** sum(self.downsample[:i + 1])

  def has_attention(self, i: int) -> bool:
    return self.block_resolution(i) in self.attention

  def feature_names(self) -> list[str]:
    """Names of the ``h_list`` entries :class:`BigGANDiscriminator` returns, in order."""
    names = []
    for i in range(self.num_blocks):
      names.append(f"blocks.{i}.0")
      if self.has_attention(i):
        names.append(f"blocks.{i}.1")
    return names + ["pooled"]


# ----------------------------------------------------------------------------- spectral norm


def _normalize(x, eps):
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def sn_sigma(w: jax.Array, u0: jax.Array, eps: float) -> jax.Array:
  """The spectral-norm divisor BigGAN-PyTorch's ``eval()`` forward uses.

  One power iteration from the stored ``u0`` without updating it: with ``Wm`` the weight
  as ``[K, out]`` (any consistent flattening of the input axes gives the same sigma),
  ``v = normalize(Wm u0)``, ``u' = normalize(v Wm)``, ``sigma = (v Wm) . u'``. ``u0``, ``v``
  and ``u'`` are constants; sigma carries the gradient of ``w``. The stored ``sv0`` is a
  training log and differs from this value.

  Args:
    w: kernel with the output axis last (``[..., out]``: HWIO conv or ``[in, out]`` linear).
    u0: ``[out]``.
    eps: ``F.normalize`` eps (DGP: 1e-6).
  """
  wm = w.reshape(-1, w.shape[-1])
  u0 = lax.stop_gradient(u0)
  v = lax.stop_gradient(_normalize(jax.lax.stop_gradient(wm) @ u0, eps))
  wv = v @ wm
  u = lax.stop_gradient(_normalize(wv, eps))
  return jnp.dot(wv, u)


class SNConv(nn.Module):
  """Spectral-normed conv (torch ``SNConv2d``), HWIO kernel, torch zero padding."""
  features: int
  kernel: int = 3
  use_bias: bool = True
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(0.02),
                   (self.kernel, self.kernel, x.shape[-1], self.features))
    u0 = self.param("u0", nn.initializers.normal(1.0), (self.features,))
    y = L.conv2d(x, w / sn_sigma(w, u0, self.eps), padding=self.kernel // 2)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class SNLinear(nn.Module):
  """Spectral-normed linear (torch ``SNLinear``), kernel ``[in, out]``."""
  features: int
  use_bias: bool = True
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(0.02), (x.shape[-1], self.features))
    u0 = self.param("u0", nn.initializers.normal(1.0), (self.features,))
    y = x @ (w / sn_sigma(w, u0, self.eps))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


# ----------------------------------------------------------------------------- shared blocks


class Attention(nn.Module):
  """SAGAN self-attention as in BigGAN: ``x + gamma * o(g softmax(theta^T phi)^T)``."""
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    theta = SNConv(c // 8, 1, False, self.eps, name="theta")(x).reshape(b, h * w, c // 8)
    phi = _maxpool2(SNConv(c // 8, 1, False, self.eps, name="phi")(x)).reshape(b, -1, c // 8)
    g = _maxpool2(SNConv(c // 2, 1, False, self.eps, name="g")(x)).reshape(b, -1, c // 2)
    beta = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
    o = jnp.einsum("bqk,bkc->bqc", beta, g).reshape(b, h, w, c // 2)
    o = SNConv(c, 1, False, self.eps, name="o")(o)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma * o


def _maxpool2(x):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _avgpool2(x):
  return lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") * 0.25


def _spatial_mean_std(x):
  """Per-sample, per-channel mean and unbiased std over H, W of NHWC."""
  n = x.shape[1] * x.shape[2]
  mean = jnp.mean(x, axis=(1, 2))
  var = jnp.sum(jnp.square(x - mean[:, None, None]), axis=(1, 2)) / (n - 1)
  return mean, jnp.sqrt(var)


# ----------------------------------------------------------------------------- generator


class CBN(nn.Module):
  """Conditional BN with stored statistics: ``bn(x) * (1 + gain(cond)) + bias(cond)``."""
  eps: float = 1e-5
  sn_eps: float = 1e-6

  @nn.compact
  def __call__(self, x, cond):
    c = x.shape[-1]
    mean = self.param("stored_mean", nn.initializers.zeros, (c,))
    var = self.param("stored_var", nn.initializers.ones, (c,))
    gain = 1.0 + SNLinear(c, False, self.sn_eps, name="gain")(cond)
    bias = SNLinear(c, False, self.sn_eps, name="bias")(cond)
    xn = (x - mean) * lax.rsqrt(var + self.eps)
    return xn * gain[:, None, None, :] + bias[:, None, None, :]


class GBlock(nn.Module):
  """BigGAN GBlock with DGP's instance-norm switch.

  ``use_in=False``: ``relu(bn1) -> up2 -> conv1 -> relu(bn2) -> conv2``, plus
  ``conv_sc(up2(x))``. ``use_in=True``: ``bn1``/``bn2`` replaced by instance norms
  ``in{1,2}(h) = (h - mean_hw) / sqrt(var_hw + eps) * weight + bias``; their affine values
  come from ``in_params`` (``{"in1": (weight, bias), "in2": ...}``) or, when that is None,
  from this forward: ``weight``/``bias`` = unbiased std / mean over H, W of what
  ``bn1``/``bn2`` would give (DGP's first-forward initialisation; batch 1), constants for
  the gradient. The values used are sown in the ``in_params`` collection.
  """
  out_channels: int
  eps: float = 1e-5
  sn_eps: float = 1e-6

  @nn.compact
  def __call__(self, x, cond, use_in: bool = False, in_params=None):
    bn1 = CBN(self.eps, self.sn_eps, name="bn1")
    bn2 = CBN(self.eps, self.sn_eps, name="bn2")
    conv1 = SNConv(self.out_channels, 3, True, self.sn_eps, name="conv1")
    conv2 = SNConv(self.out_channels, 3, True, self.sn_eps, name="conv2")
    conv_sc = SNConv(self.out_channels, 1, True, self.sn_eps, name="conv_sc")

    def norm(h, bn, key):
      if not use_in:
        return bn(h, cond)
      if in_params is None:
        mean, std = _spatial_mean_std(bn(h, cond))
        w, b = lax.stop_gradient(std[0]), lax.stop_gradient(mean[0])
      else:
        w, b = in_params[key]
        if self.is_initializing():
          bn(h, cond)
      self.sow("in_params", key, (w, b), reduce_fn=lambda _, v: v)
      return L.instance_norm(h, self.eps) * w + b

    h = jax.nn.relu(norm(x, bn1, "in1"))
    h = L.upsample_nearest(h, 2)
    x = L.upsample_nearest(x, 2)
    h = conv1(h)
    h = jax.nn.relu(norm(h, bn2, "in2"))
    h = conv2(h)
    return h + conv_sc(x)


class BigGANGenerator(nn.Module):
  """BigGAN generator: ``(z [B, dim_z], emb [B, shared_dim]) -> image [B, R, R, 3]`` in [-1, 1].

  ``emb`` is the class embedding ``embed(y)`` (DGP calls ``G(z, G.shared(y))``; morphing
  passes mixed embeddings). ``use_in`` switches every GBlock to DGP's instance norm (see
  :class:`GBlock`); ``in_params`` (``{"blocks_{i}_0": {"in1": (w, b), "in2": (w, b)}}``)
  fixes its affine values, otherwise they are computed by this forward and sown in the
  ``in_params`` collection. ``return_features`` also returns the per-block outputs keyed by
  state_dict names (``linear`` ``[B, C*w*w]``, ``blocks.{i}.0``, ``blocks.{i}.1`` NHWC).
  """
  config: BigGANConfig

  def setup(self):
    cfg = self.config
    self.shared = _Embed(cfg.n_classes, cfg.shared_dim, name="shared")
    self.linear = SNLinear(cfg.in_channels[0] * cfg.bottom_width ** 2, True, cfg.sn_eps,
                           name="linear")
    self.blocks = [GBlock(cfg.out_channels[i], cfg.bn_eps, cfg.sn_eps, name=f"blocks_{i}_0")
                   for i in range(cfg.num_blocks)]
    self.attn = {i: Attention(cfg.sn_eps, name=f"blocks_{i}_1")
                 for i in range(cfg.num_blocks) if cfg.has_attention(i)}
    self.out_bn = _OutputBN(cfg.bn_eps, name="output_layer_0")
    self.out_conv = SNConv(3, 3, True, cfg.sn_eps, name="output_layer_2")

  def embed(self, y: jax.Array) -> jax.Array:
    """``shared(y)``: int classes ``[B]`` -> ``[B, shared_dim]`` (plain embedding, no SN)."""
    return self.shared(y)

  def __call__(self, z: jax.Array, emb: jax.Array, use_in: bool = False, in_params=None,
               return_features: bool = False):
    cfg = self.config
    b = z.shape[0]
    if z.shape != (b, cfg.dim_z) or emb.shape != (b, cfg.shared_dim):
      raise ValueError(f"BigGAN expects z [B, {cfg.dim_z}] and emb [B, {cfg.shared_dim}], "
                       f"got {z.shape} and {emb.shape}")
    if self.is_initializing():
      self.embed(jnp.zeros((1,), jnp.int32))
    zs = jnp.split(z, cfg.num_slots, axis=1)
    h = self.linear(zs[0])
    feats = {"linear": h}
    w = cfg.bottom_width
    h = h.reshape(b, cfg.in_channels[0], w, w).transpose(0, 2, 3, 1)
    for i, block in enumerate(self.blocks):
      cond = jnp.concatenate([emb, zs[i + 1]], axis=1)
      ip = None if in_params is None else in_params[f"blocks_{i}_0"]
      h = block(h, cond, use_in, ip)
      feats[f"blocks.{i}.0"] = h
      if i in self.attn:
        h = self.attn[i](h)
        feats[f"blocks.{i}.1"] = h
    h = jax.nn.relu(self.out_bn(h))
    x = jnp.tanh(self.out_conv(h))
    return (x, feats) if return_features else x


class _Embed(nn.Module):
  """Plain embedding ``weight [n, dim]`` (BigGAN's ``shared``; not spectral-normed)."""
  num: int
  dim: int

  @nn.compact
  def __call__(self, y):
    return jnp.asarray(self.param("weight", nn.initializers.normal(1.0), (self.num, self.dim)))[y]


class _OutputBN(nn.Module):
  """Output BN with stored statistics and learned gain/bias (not conditional)."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, h):
    c = h.shape[-1]
    gain = self.param("gain", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean = self.param("stored_mean", nn.initializers.zeros, (c,))
    var = self.param("stored_var", nn.initializers.ones, (c,))
    return (h - mean) * lax.rsqrt(var + self.eps) * gain + bias


# ----------------------------------------------------------------------------- discriminator


class DBlock(nn.Module):
  """BigGAN DBlock (``D_wide``): ``conv2(relu(conv1(pre(x))))``, avgpool, plus the shortcut."""
  out_channels: int
  preactivation: bool
  downsample: bool
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    h = jax.nn.relu(x) if self.preactivation else x
    h = SNConv(self.out_channels, 3, True, self.eps, name="conv1")(h)
    h = SNConv(self.out_channels, 3, True, self.eps, name="conv2")(jax.nn.relu(h))
    if self.downsample:
      h = _avgpool2(h)
    learnable_sc = x.shape[-1] != self.out_channels or self.downsample
    sc = x
    if self.preactivation:
      if learnable_sc:
        sc = SNConv(self.out_channels, 1, True, self.eps, name="conv_sc")(sc)
      if self.downsample:
        sc = _avgpool2(sc)
    else:
      if self.downsample:
        sc = _avgpool2(sc)
      if learnable_sc:
        sc = SNConv(self.out_channels, 1, True, self.eps, name="conv_sc")(sc)
    return h + sc


class BigGANDiscriminator(nn.Module):
  """BigGAN discriminator: image NHWC [-1, 1] -> ``(out [B, 1], h_list)``.

  ``h_list`` holds every DBlock and attention output (``config.feature_names()``), the last
  DBlock output ReLU'd (BigGAN's in-place ReLU before pooling reaches it), then
  ``pooled = sum_hw relu(h)`` ``[B, C]``. With ``y`` the projection term
  ``sum(embed(y) * pooled)`` is added (DGP never passes ``y``).
  """
  config: DiscriminatorConfig

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array | None = None):
    cfg = self.config
    h = x
    feats = []
    for i in range(cfg.num_blocks):
      h = DBlock(cfg.out_channels[i], i > 0, cfg.downsample[i], cfg.sn_eps,
                 name=f"blocks_{i}_0")(h)
      feats.append(h)
      if cfg.has_attention(i):
        h = Attention(cfg.sn_eps, name=f"blocks_{i}_1")(h)
        feats.append(h)
    h = jax.nn.relu(h)
    feats[-1] = h
    pooled = jnp.sum(h, axis=(1, 2))
    feats.append(pooled)
    out = SNLinear(1, True, cfg.sn_eps, name="linear")(pooled)
    emb = SNEmbed(cfg.n_classes, cfg.sn_eps, name="embed")(
        jnp.zeros((1,), jnp.int32) if y is None else y, pooled.shape[-1])
    if y is not None:
      out = out + jnp.sum(emb * pooled, axis=1, keepdims=True)
    return out, feats


class SNEmbed(nn.Module):
  """Spectral-normed embedding (torch ``SNEmbedding``): ``weight [n, dim]``, ``u0 [n]``."""
  num: int
  eps: float = 1e-6

  @nn.compact
  def __call__(self, y, dim):
    w = self.param("weight", nn.initializers.normal(0.02), (self.num, dim))
    u0 = self.param("u0", nn.initializers.normal(1.0), (self.num,))
    return jnp.asarray(w)[y] / sn_sigma(w.T, u0, self.eps)


# ----------------------------------------------------------------------------- trainable groups


def num_param_groups(cfg: BigGANConfig) -> int:
  """DGP's G optimiser groups: 0 = ``linear`` (+ ``shared``), i = GBlock i-1 (+ attention)."""
  return cfg.num_blocks + 1


def param_group(path: str, update_embed: bool = False) -> int | None:
  """The DGP optimiser group of a ``/``-joined param path, or None if DGP never trains it.

  ``u0`` and BN running statistics are buffers; ``output_layer`` is never optimised;
  ``shared`` only with ``update_embed``.
  """
  leaf = path.rsplit("/", 1)[-1]
  if leaf in ("u0", "stored_mean", "stored_var"):
    return None
  top = path.split("/", 1)[0]
  if top == "linear" or (top == "shared" and update_embed):
    return 0
  m = re.fullmatch(r"blocks_(\d+)_\d+", top)
  if m:
    return int(m.group(1)) + 1
  return None


def trainable_mask(params, update_embed: bool = False):
  """A tree like ``params`` of group ids (int) or -1 for leaves DGP never trains."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  treedef = jax.tree_util.tree_structure(params)

  def name(path):
    return "/".join(str(getattr(k, "key", k)) for k in path)
  groups = [param_group(name(p), update_embed) for p, _ in flat]
  return jax.tree_util.tree_unflatten(treedef, [-1 if g is None else g for g in groups])


# ----------------------------------------------------------------------------- inference


def infer_config(shapes: dict[str, Sequence[int]]) -> BigGANConfig:
  """Generator architecture from a DGP/BigGAN-PyTorch G state_dict ``{key: shape}``."""
  idx = sorted({int(m.group(1)) for k in shapes
                for m in [re.fullmatch(r"blocks\.(\d+)\.0\.conv1\.weight", k)] if m})
  if not idx or "shared.weight" not in shapes or "linear.weight" not in shapes:
    raise ValueError("not a BigGAN generator state_dict (needs shared.weight, linear.weight, "
                     "blocks.N.0.conv1.weight)")
  in_ch = tuple(int(shapes[f"blocks.{i}.0.conv1.weight"][1]) for i in idx)
  out_ch = tuple(int(shapes[f"blocks.{i}.0.conv1.weight"][0]) for i in idx)
  n_classes, shared_dim = map(int, shapes["shared.weight"])
  lin_out, z_chunk = map(int, shapes["linear.weight"])
  bw = int(round(math.sqrt(lin_out // in_ch[0])))
  if bw * bw * in_ch[0] != lin_out:
    raise ValueError(f"linear.weight {shapes['linear.weight']} is not in_channels[0]*w*w")
  attn = tuple(bw * 2 ** (i + 1) for i in idx if f"blocks.{i}.1.gamma" in shapes)
  return BigGANConfig(resolution=bw * 2 ** len(idx), in_channels=in_ch, out_channels=out_ch,
                      dim_z=z_chunk * (len(idx) + 1), shared_dim=shared_dim,
                      n_classes=n_classes, attention=attn, bottom_width=bw)


def infer_discriminator_config(shapes: dict[str, Sequence[int]], resolution: int | None = None
                               ) -> DiscriminatorConfig:
  """Discriminator architecture from a BigGAN-PyTorch D state_dict.

  Blocks downsample except the last (BigGAN's D_arch); the input resolution is
  ``4 * 2 ** (num_blocks - 1)`` unless given.
  """
  idx = sorted({int(m.group(1)) for k in shapes
                for m in [re.fullmatch(r"blocks\.(\d+)\.0\.conv1\.weight", k)] if m})
  if not idx or "linear.weight" not in shapes or "embed.weight" not in shapes:
    raise ValueError("not a BigGAN discriminator state_dict (needs blocks.N.0.conv1.weight, "
                     "linear.weight, embed.weight)")
  n = len(idx)
  in_ch = tuple(int(shapes[f"blocks.{i}.0.conv1.weight"][1]) for i in idx)
  out_ch = tuple(int(shapes[f"blocks.{i}.0.conv1.weight"][0]) for i in idx)
  down = tuple([True] * (n - 1) + [False])
  res = resolution or 4 * 2 ** (n - 1)
  cfg = DiscriminatorConfig(res, in_ch, out_ch, down, int(shapes["embed.weight"][0]), ())
  attn = tuple(cfg.block_resolution(i) for i in idx if f"blocks.{i}.1.gamma" in shapes)
  return dataclasses.replace(cfg, attention=attn)


def generate(module: BigGANGenerator, params, z: jax.Array, y: jax.Array, use_in: bool = False,
             in_params=None) -> jax.Array:
  """``G(z, G.shared(y))``: z ``[B, dim_z]``, int classes ``[B]`` -> NHWC image in [-1, 1]."""
  emb = module.apply({"params": params}, y, method="embed")
  return module.apply({"params": params}, z, emb, use_in, in_params)


def init_in_params(module: BigGANGenerator, params, z: jax.Array, emb: jax.Array) -> tuple:
  """DGP's first ``use_in`` forward for one image: ``(x, in_params)``.

  ``in_params`` is ``{"blocks_{i}_0": {"in1": (weight, bias), "in2": (weight, bias)}}`` (each
  ``[C]``), set from this forward's BN outputs (see :class:`GBlock`); pass it back as
  ``in_params`` to later ``use_in`` forwards. z ``[1, dim_z]``, emb ``[1, shared_dim]``.
  """
  if z.shape[0] != 1:
    raise ValueError(f"instance-norm initialisation is per image (batch 1), got batch {z.shape[0]}")
  x, state = module.apply({"params": params}, z, emb, True, None, mutable=["in_params"])
  ip = {blk: {k: tuple(v) for k, v in d.items()} for blk, d in state["in_params"].items()}
  return x, jax.tree_util.tree_map(lax.stop_gradient, ip)
