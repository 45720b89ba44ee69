"""Generators and critics: DCGAN family, the ResNets of Gulrajani et al., MLPs.

All modules are Flax linen and pure: `module.apply(variables, x, labels)`.
Images are NHWC float32. Generators map z [B, z_dim] to images [B, H, W, C]
(or points [B, 2] for the MLP); critics map images to one unbounded score per
sample, shape [B]. `labels` (int32 [B]) is for class-conditional models
(config.model.num_classes > 0): how each network takes it is a method of
wgan_jax/conditioning.py, called inside the architecture; unconditional
networks (num_classes = 0) take labels=None. A critic with an auxiliary
classifier ('ac') returns (scores [B], class_logits [B, K]).

`ARCHS` maps config.model.arch to an `Arch`: how to build the two networks,
which data shapes it supports, and how to shrink it for a smoke run. Adding
an architecture is one entry and one test.

Convolutions use torch's padding (`Conv2d(k, s, p=(k-1)//2)`, and the
transposed form with the output padding that doubles the size), so layer
shapes and parameter counts match the PyTorch reference of
../shared/bench/SPEC.md exactly. They are computed by wgan_jax.convolutions,
whose derivatives of every order stay fast on XLA:CPU.
"""

import dataclasses
import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from wgan_jax import conditioning as conditioning_lib
from wgan_jax import convolutions

Array = jax.Array
Shape = tuple[int, ...]

# torch.nn.BatchNorm momentum 0.1 is Flax momentum 0.9.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _initializers(init: str) -> tuple[Callable[..., Array], Callable[..., Array]]:
  """(kernel_init, bias_init) for an init scheme name."""
  if init == "dcgan":
    return nn.initializers.normal(0.02), nn.initializers.zeros
  if init == "default":
    return nn.linear.default_kernel_init, nn.initializers.zeros
  raise ValueError(f"Unknown init {init!r}; use 'dcgan' or 'default'.")


def _activation(name: str, slope: float) -> Callable[[Array], Array]:
  if name == "relu":
    return nn.relu
  if name == "leaky_relu":
    return lambda x: nn.leaky_relu(x, slope)
  raise ValueError(f"Unknown activation {name!r}; use 'relu' or 'leaky_relu'.")


def output_activation(name: str) -> Callable[[Array], Array]:
  """The generator's output nonlinearity: it fixes the data range."""
  if name == "tanh":
    return jnp.tanh
  if name == "sigmoid":
    return nn.sigmoid
  if name == "linear":
    return lambda x: x
  raise ValueError(f"Unknown output_activation {name!r}; use 'tanh', "
                   "'sigmoid' or 'linear'.")


class Conv(nn.Module):
  """torch Conv2d(k, s, p=(k-1)//2): H -> floor((H - 1) / s) + 1 for odd k.

  Kernel [k, k, C_in, C_out] and bias [C_out], as Flax's nn.Conv; computed by
  convolutions.conv2d, whose derivatives of every order are fast.
  """
  features: int
  kernel_size: int
  stride: int = 1
  use_bias: bool = True
  kernel_init: Callable[..., Array] = nn.linear.default_kernel_init
  bias_init: Callable[..., Array] = nn.initializers.zeros
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
    y = convolutions.conv2d(x.astype(self.dtype), kernel.astype(self.dtype),
                            self.stride, (k - 1) // 2)
    if self.use_bias:
      y += self.param("bias", self.bias_init, (self.features,)).astype(self.dtype)
    return y


class ConvTranspose(nn.Module):
  """torch ConvTranspose2d(k, s, p=(k-1)//2) that multiplies H by `stride`.

  Kernel [k, k, C_out, C_in]: torch's weight [C_in, C_out, k, k] transposed
  (2, 3, 1, 0), the same as Flax's nn.ConvTranspose(transpose_kernel=True).
  """
  features: int
  kernel_size: int
  stride: int = 2
  use_bias: bool = True
  kernel_init: Callable[..., Array] = nn.linear.default_kernel_init
  bias_init: Callable[..., Array] = nn.initializers.zeros
  dtype: Any = jnp.float32  # computation dtype; parameters stay float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (k, k, self.features, x.shape[-1]))
    y = convolutions.conv_transpose2d(x.astype(self.dtype),
                                      kernel.astype(self.dtype), self.stride)
    if self.use_bias:
      y += self.param("bias", self.bias_init, (self.features,)).astype(self.dtype)
    return y


def _batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                      epsilon=_BN_EPSILON, name=name)


def _generator_norm(module: nn.Module, labels: Array | None, train: bool,
                    name: str | None = None) -> Callable[[Array], Array]:
  """A generator's batch norm: plain, or per class if its conditioning says so."""
  return conditioning_lib.generator_batch_norm(
      module.conditioning, labels, module.num_classes, train, _BN_MOMENTUM,
      _BN_EPSILON, name)


# ----------------------------------------------------------------------------
# DCGAN family
# ----------------------------------------------------------------------------


def dcgan_base_size(image_size: int) -> int | None:
  """4 or 7: the spatial size a DCGAN generator starts from; None if neither."""
  for base in (4, 7):
    ratio = image_size / base
    if ratio >= 1 and ratio == 2 ** round(math.log2(ratio)):
      return base
  return None


def dcgan_layout(model: ml_collections.ConfigDict, image_size: int) -> dict[str, Any]:
  """The DCGAN block layout: explicit fields, or derived from the image size.

  Derived: the generator doubles the size from 4x4 (or 7x7) with widths
  width*2^(n-1) ... width, then a stride-2 output layer; the critic mirrors it
  with stride-2 convs width ... width*2^(n-1) down to 4x4. Kernel sizes: one
  per convolution (the generator's last is its output layer), else
  model.kernel_size for all.
  """
  n_up = round(math.log2(image_size / dcgan_base_size(image_size)))
  widths = tuple(model.width * 2 ** i for i in reversed(range(n_up)))
  layout = dict(
      generator_base_features=model.generator_base_features or widths[0],
      generator_features=tuple(model.generator_features) or widths[1:],
      generator_strides=tuple(model.generator_strides) or (2,) * (n_up - 1),
      generator_output_stride=model.generator_output_stride,
      critic_features=tuple(model.critic_features) or widths[::-1],
      critic_strides=tuple(model.critic_strides) or (2,) * n_up,
  )
  # One kernel size per convolution; () repeats model.kernel_size.
  for net, count in _convolution_counts(layout).items():
    layout[f"{net}_kernel_sizes"] = (tuple(model[f"{net}_kernel_sizes"])
                                     or (model.kernel_size,) * count)
  return layout


def _convolution_counts(layout: dict[str, Any]) -> dict[str, int]:
  """Convolutions per network of a DCGAN layout: the generator's output layer counts."""
  return {"generator": len(layout["generator_features"]) + 1,
          "critic": len(layout["critic_features"])}


class DCGANGenerator(nn.Module):
  """Dense -> base x base x F -> [ConvT-BN-act]* -> ConvT -> output activation.

  The first batch norm normalizes each Dense feature before the reshape, as
  the Keras model and the benchmark reference do. Layers followed by batch
  norm have no bias.
  """
  output_shape: Shape  # (H, W, C)
  base_features: int
  features: Sequence[int]
  strides: Sequence[int]
  kernel_sizes: Sequence[int]  # len(features) + 1: the last is the output layer's
  output_stride: int = 2
  norm: str = "batch"
  activation: str = "relu"
  leaky_relu_slope: float = 0.2
  output_activation: str = "tanh"
  init_scheme: str = "dcgan"
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.GENERATOR_METHODS
  embedding_dim: int = 0  # label embedding ('concat')

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None,
               train: bool = True) -> Array:
    height, width, channels = self.output_shape
    upsampling = math.prod(self.strides) * self.output_stride
    base = height // upsampling
    if base * upsampling != height or height != width:
      raise ValueError(f"Generator strides {tuple(self.strides)} and output "
                       f"stride {self.output_stride} cannot produce "
                       f"{self.output_shape} images.")
    kernel_init, bias_init = _initializers(self.init_scheme)
    act = _activation(self.activation, self.leaky_relu_slope)
    bn = self.norm == "batch"
    norm = functools.partial(_generator_norm, self, labels, train)
    z = conditioning_lib.GENERATOR_METHODS[self.conditioning].prepare_noise(
        z, labels, self.num_classes, self.embedding_dim)

    x = nn.Dense(base * base * self.base_features, use_bias=not bn,
                 kernel_init=kernel_init, bias_init=bias_init,
                 dtype=self.dtype)(z)
    if bn:
      x = norm()(x)
    x = act(x)
    x = x.reshape(z.shape[0], base, base, self.base_features)
    for feat, stride, k in zip(self.features, self.strides, self.kernel_sizes):
      x = ConvTranspose(feat, k, stride, use_bias=not bn,
                        kernel_init=kernel_init, bias_init=bias_init,
                        dtype=self.dtype)(x)
      if bn:
        x = norm()(x)
      x = act(x)
    x = ConvTranspose(channels, self.kernel_sizes[-1], self.output_stride,
                      kernel_init=kernel_init, bias_init=bias_init,
                      dtype=self.dtype)(x)
    return output_activation(self.output_activation)(x.astype(jnp.float32))


class DCGANCritic(nn.Module):
  """[Conv-(norm)-LeakyReLU]* -> flatten -> Dense(1); linear output [B].

  As in DCGAN, the first block is never normalized.
  """
  features: Sequence[int]
  strides: Sequence[int]
  kernel_sizes: Sequence[int]  # one per conv
  norm: str = "none"
  leaky_relu_slope: float = 0.2
  init_scheme: str = "dcgan"
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.CRITIC_METHODS

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None,
               train: bool = True) -> conditioning_lib.CriticOutput:
    method = conditioning_lib.CRITIC_METHODS[self.conditioning]
    x = method.prepare_input(x, labels, self.num_classes)
    kernel_init, bias_init = _initializers(self.init_scheme)
    for i, (feat, stride, k) in enumerate(
        zip(self.features, self.strides, self.kernel_sizes)):
      norm = self.norm if i > 0 else "none"
      x = Conv(feat, k, stride, use_bias=norm != "batch",
               kernel_init=kernel_init, bias_init=bias_init,
               dtype=self.dtype)(x)
      x = _critic_norm(norm, train)(x)
      x = nn.leaky_relu(x, self.leaky_relu_slope)
    x = x.reshape(x.shape[0], -1)
    return method.head(x, nn.Dense(1, kernel_init=kernel_init,
                                   bias_init=bias_init, dtype=self.dtype),
                       labels, self.num_classes)


def _critic_norm(norm: str, train: bool) -> Callable[[Array], Array]:
  """Per-sample (layer) or cross-sample (batch) normalization, or none."""
  if norm == "none":
    return lambda x: x
  if norm == "layer":
    # Over H, W, C of each sample with per-channel scale and offset, as the
    # WGAN-GP code's Layernorm: samples stay independent.
    return nn.LayerNorm(epsilon=1e-5, reduction_axes=(-3, -2, -1),
                        feature_axes=-1)
  if norm == "batch":
    return _batch_norm(train)
  raise ValueError(f"Unknown critic norm {norm!r}; use 'none', 'layer' or "
                   "'batch'.")


# ----------------------------------------------------------------------------
# ResNets of Gulrajani et al. 2017 (gan_cifar_resnet.py, gan_64x64.py)
# ----------------------------------------------------------------------------


def _mean_pool(x: Array) -> Array:
  """2x2 average pooling, stride 2: [B, H, W, C] -> [B, H/2, W/2, C]."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _upsample(x: Array) -> Array:
  """Nearest-neighbour 2x upsampling (the reference's depth_to_space of 4 copies)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResidualBlock(nn.Module):
  """norm-ReLU-conv-norm-ReLU-conv plus a shortcut; resample None|'up'|'down'.

  'up' upsamples before the first conv and in the shortcut; 'down' pools after
  the second conv and before the shortcut's 1x1 conv, as the reference does.
  """
  features: int
  resample: str | None = None
  norm: str = "none"  # 'batch' (generator), 'layer' or 'none' (critic)
  dtype: Any = jnp.float32
  num_classes: int = 0  # generator blocks: conditional batch norm ('cbn')
  conditioning: str = conditioning_lib.UNCONDITIONAL

  @nn.compact
  def __call__(self, x: Array, train: bool = True,
               labels: Array | None = None) -> Array:
    in_features = x.shape[-1]
    if self.norm == "batch":
      normalize = functools.partial(_generator_norm, self, labels, train)
    else:
      normalize = lambda name: _critic_norm(self.norm, train)  # noqa: E731

    if self.resample is None and in_features == self.features:
      shortcut = x
    elif self.resample == "up":
      shortcut = Conv(self.features, 1, name="shortcut", dtype=self.dtype)(_upsample(x))
    elif self.resample == "down":
      shortcut = Conv(self.features, 1, name="shortcut", dtype=self.dtype)(_mean_pool(x))
    else:
      shortcut = Conv(self.features, 1, name="shortcut", dtype=self.dtype)(x)

    # A bias right before a normalization is redundant (gan_64x64.py drops it).
    conv1_bias = self.norm == "none"
    h = nn.relu(normalize("norm1")(x))
    if self.resample == "up":
      h = _upsample(h)
    h = Conv(in_features if self.resample == "down" else self.features, 3,
             use_bias=conv1_bias, name="conv1", dtype=self.dtype)(h)
    h = nn.relu(normalize("norm2")(h))
    h = Conv(self.features, 3, name="conv2", dtype=self.dtype)(h)
    if self.resample == "down":
      h = _mean_pool(h)
    return shortcut + h


class ResNetGenerator(nn.Module):
  """Dense -> 4x4 -> residual up blocks -> BN-ReLU-Conv3x3 -> tanh.

  32x32 (CIFAR-10): width 128 at every block. Larger images: widths
  8w, 8w, 4w, 2w, w (gan_64x64.py), capped at 8w.
  """
  output_shape: Shape
  width: int = 128
  output_activation: str = "tanh"
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.GENERATOR_METHODS
  embedding_dim: int = 0  # label embedding ('concat')

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None,
               train: bool = True) -> Array:
    height, _, channels = self.output_shape
    n_up = round(math.log2(height / 4))
    if 4 * 2 ** n_up != height:
      raise ValueError(f"ResNet generator needs H = 4*2^n, got {height}.")
    multipliers = _resnet_multipliers(height, n_up)
    z = conditioning_lib.GENERATOR_METHODS[self.conditioning].prepare_noise(
        z, labels, self.num_classes, self.embedding_dim)
    x = nn.Dense(4 * 4 * multipliers[0] * self.width, dtype=self.dtype)(z)
    x = x.reshape(z.shape[0], 4, 4, multipliers[0] * self.width)
    for m in multipliers[1:]:
      x = ResidualBlock(m * self.width, "up", "batch", self.dtype,
                        self.num_classes, self.conditioning)(x, train, labels)
    x = nn.relu(_generator_norm(self, labels, train)(x))
    x = Conv(channels, 3, dtype=self.dtype)(x)
    return output_activation(self.output_activation)(x.astype(jnp.float32))


def _resnet_multipliers(height: int, n_up: int) -> tuple[int, ...]:
  """Channel multipliers of the n_up + 1 generator stages, coarse to fine."""
  if height == 32:
    return (1,) * (n_up + 1)
  widths = tuple(min(8, 2 ** i) for i in reversed(range(n_up)))
  return (widths[0],) + widths


class ResNetCritic(nn.Module):
  """Residual critic of Gulrajani et al.; linear output [B].

  32x32: optimized first block, one down block, two plain blocks, ReLU, global
  mean pool, Dense(1) (gan_cifar_resnet.py). Larger images: Conv3x3(w), down
  blocks w->2w->4w->8w->8w... to 4x4, flatten, Dense(1) (gan_64x64.py).
  """
  width: int = 128
  norm: str = "none"
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.CRITIC_METHODS

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None,
               train: bool = True) -> conditioning_lib.CriticOutput:
    method = conditioning_lib.CRITIC_METHODS[self.conditioning]
    x = method.prepare_input(x, labels, self.num_classes)
    height = x.shape[1]
    w = self.width
    if height == 32:
      shortcut = Conv(w, 1, name="shortcut", dtype=self.dtype)(_mean_pool(x))
      h = nn.relu(Conv(w, 3, dtype=self.dtype)(x))
      h = _mean_pool(Conv(w, 3, dtype=self.dtype)(h))
      x = shortcut + h
      x = ResidualBlock(w, "down", self.norm, self.dtype)(x, train)
      x = ResidualBlock(w, None, self.norm, self.dtype)(x, train)
      x = ResidualBlock(w, None, self.norm, self.dtype)(x, train)
      x = nn.relu(x).mean(axis=(1, 2))
    else:
      n_down = round(math.log2(height / 4))
      if 4 * 2 ** n_down != height:
        raise ValueError(f"ResNet critic needs H = 4*2^n, got {height}.")
      x = Conv(w, 3, dtype=self.dtype)(x)
      for i in range(n_down):
        x = ResidualBlock(min(8, 2 ** (i + 1)) * w, "down", self.norm, self.dtype)(x, train)
      x = x.reshape(x.shape[0], -1)
    return method.head(x, nn.Dense(1, dtype=self.dtype), labels,
                       self.num_classes)


# ----------------------------------------------------------------------------
# MLPs for 2-D toy data (gan_toy.py)
# ----------------------------------------------------------------------------


class MLPGenerator(nn.Module):
  """z [B, z_dim] -> [Dense-ReLU] x layers -> Dense(out_dim); points [B, D]."""
  output_shape: Shape  # (D,)
  width: int = 512
  layers: int = 3
  output_activation: str = "linear"
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.GENERATOR_METHODS
  embedding_dim: int = 0  # label embedding ('concat')

  @nn.compact
  def __call__(self, z: Array, labels: Array | None = None,
               train: bool = True) -> Array:
    del train  # no batch statistics
    x = conditioning_lib.GENERATOR_METHODS[self.conditioning].prepare_noise(
        z, labels, self.num_classes, self.embedding_dim)
    for _ in range(self.layers):
      x = nn.relu(nn.Dense(self.width, dtype=self.dtype)(x))
    x = nn.Dense(math.prod(self.output_shape), dtype=self.dtype)(x)
    x = x.reshape((z.shape[0],) + tuple(self.output_shape))
    return output_activation(self.output_activation)(x.astype(jnp.float32))


class MLPCritic(nn.Module):
  """x [B, ...] -> flatten -> [Dense-ReLU] x layers -> Dense(1); scores [B]."""
  width: int = 512
  layers: int = 3
  dtype: Any = jnp.float32
  num_classes: int = 0  # 0: unconditional
  conditioning: str = conditioning_lib.UNCONDITIONAL  # conditioning_lib.CRITIC_METHODS

  @nn.compact
  def __call__(self, x: Array, labels: Array | None = None,
               train: bool = True) -> conditioning_lib.CriticOutput:
    del train
    method = conditioning_lib.CRITIC_METHODS[self.conditioning]
    x = method.prepare_input(x, labels, self.num_classes)
    x = x.reshape(x.shape[0], -1)
    for _ in range(self.layers):
      x = nn.relu(nn.Dense(self.width, dtype=self.dtype)(x))
    return method.head(x, nn.Dense(1, dtype=self.dtype), labels,
                       self.num_classes)


# ----------------------------------------------------------------------------
# Construction from a config
# ----------------------------------------------------------------------------


def _conditioning_fields(
    model: ml_collections.ConfigDict) -> tuple[dict[str, Any], dict[str, Any]]:
  """The conditioning fields of (generator, critic) for a config.model."""
  generator_method, critic_method = conditioning_lib.methods(model)
  return (dict(num_classes=model.num_classes, conditioning=generator_method,
               embedding_dim=model.label_embedding_dim),
          dict(num_classes=model.num_classes, conditioning=critic_method))


def _build_mlp(model: ml_collections.ConfigDict, data_shape: Shape,
               dtype: Any) -> tuple[nn.Module, nn.Module]:
  generator_fields, critic_fields = _conditioning_fields(model)
  return (MLPGenerator(tuple(data_shape), model.width, model.mlp_layers,
                       model.output_activation, dtype, **generator_fields),
          MLPCritic(model.width, model.mlp_layers, dtype, **critic_fields))


def _build_resnet(model: ml_collections.ConfigDict, data_shape: Shape,
                  dtype: Any) -> tuple[nn.Module, nn.Module]:
  generator_fields, critic_fields = _conditioning_fields(model)
  return (ResNetGenerator(tuple(data_shape), model.width,
                          model.output_activation, dtype, **generator_fields),
          ResNetCritic(model.width, model.critic_norm, dtype, **critic_fields))


def _build_dcgan(model: ml_collections.ConfigDict, data_shape: Shape,
                 dtype: Any) -> tuple[nn.Module, nn.Module]:
  layout = dcgan_layout(model, data_shape[0])
  generator_fields, critic_fields = _conditioning_fields(model)
  generator = DCGANGenerator(
      output_shape=tuple(data_shape),
      base_features=layout["generator_base_features"],
      features=layout["generator_features"],
      strides=layout["generator_strides"],
      kernel_sizes=layout["generator_kernel_sizes"],
      output_stride=layout["generator_output_stride"],
      norm=model.generator_norm,
      activation=model.generator_activation,
      leaky_relu_slope=model.leaky_relu_slope,
      output_activation=model.output_activation, init_scheme=model.init,
      dtype=dtype, **generator_fields)
  critic = DCGANCritic(
      features=layout["critic_features"], strides=layout["critic_strides"],
      kernel_sizes=layout["critic_kernel_sizes"], norm=model.critic_norm,
      leaky_relu_slope=model.leaky_relu_slope, init_scheme=model.init,
      dtype=dtype, **critic_fields)
  return generator, critic


def _square_image_problem(data_shape: Shape) -> str | None:
  if len(data_shape) != 3 or data_shape[0] != data_shape[1]:
    return f"needs square images (H, H, C); the data has shape {tuple(data_shape)}"
  return None


def _conditional_norm_problem(model: ml_collections.ConfigDict,
                              has_batch_norm: bool) -> str | None:
  generator_method, _ = conditioning_lib.methods(model)
  if (conditioning_lib.GENERATOR_METHODS[generator_method].conditional_norm
      and not has_batch_norm):
    return (f"has no batch norm in its generator for "
            f"generator_conditioning={generator_method!r}: use 'concat'"
            + (" or set config.model.generator_norm='batch'"
               if model.arch == "dcgan" else ""))
  return None


def _dcgan_problem(model: ml_collections.ConfigDict,
                   data_shape: Shape) -> str | None:
  problem = (_square_image_problem(data_shape)
             or _conditional_norm_problem(model, model.generator_norm == "batch"))
  if problem:
    return problem
  size = data_shape[0]
  if dcgan_base_size(size) is None:
    return (f"needs an image size 4*2^n or 7*2^n (e.g. 28, 32, 64, 128), got "
            f"{size}: set config.data.image_size to such a size")
  layout = dcgan_layout(model, size)
  for net in ("generator", "critic"):
    if len(layout[f"{net}_features"]) != len(layout[f"{net}_strides"]):
      return (f"config.model.{net}_features and {net}_strides must have the "
              "same length")
  for net, count in _convolution_counts(layout).items():
    sizes = layout[f"{net}_kernel_sizes"]
    if len(sizes) != count:
      return (f"needs one kernel size per convolution in config.model."
              f"{net}_kernel_sizes ({count}"
              + (": the hidden layers, then the output layer" if net == "generator"
                 else "") + f"), got {tuple(sizes)}; () uses kernel_size "
              "everywhere")
    if any(k < 1 for k in sizes):
      return (f"needs positive kernel sizes in config.model.{net}_kernel_sizes, "
              f"got {tuple(sizes)}")
  upsampling = math.prod(layout["generator_strides"]) * layout[
      "generator_output_stride"]
  if size % upsampling or size // upsampling < 1:
    return (f"generator strides {layout['generator_strides']} and output "
            f"stride {layout['generator_output_stride']} cannot produce "
            f"{size}x{size} images")
  # torch's padding (k-1)//2 keeps a stride-1 transposed convolution's size
  # only for odd k: an even k adds a pixel per layer.
  generator_strides = (*layout["generator_strides"],
                       layout["generator_output_stride"])
  even_at_stride_1 = [
      i for i, (k, stride) in enumerate(
          zip(layout["generator_kernel_sizes"], generator_strides))
      if k % 2 == 0 and stride == 1]
  if even_at_stride_1:
    odd = tuple(k - 1 if i in even_at_stride_1 else k
                for i, k in enumerate(layout["generator_kernel_sizes"]))
    field = (f"config.model.generator_kernel_sizes="
             f"{tuple(model.generator_kernel_sizes)}"
             if model.generator_kernel_sizes else
             f"config.model.kernel_size={model.kernel_size}")
    return (f"has stride-1 generator layers (strides {generator_strides}), "
            f"which keep the size only with an odd kernel, but {field} gives "
            f"layer(s) {even_at_stride_1} an even one: use an odd size "
            f"there, e.g. config.model.generator_kernel_sizes={odd}, or "
            "stride 2 everywhere")
  return None


def _resnet_problem(model: ml_collections.ConfigDict,
                    data_shape: Shape) -> str | None:
  del model
  problem = _square_image_problem(data_shape)
  if problem:
    return problem
  n = round(math.log2(data_shape[0] / 4))
  if data_shape[0] < 4 or 4 * 2 ** n != data_shape[0]:
    return f"needs an image size 4*2^n (32, 64, ...), got {data_shape[0]}"
  return None


def _points_problem(model: ml_collections.ConfigDict,
                    data_shape: Shape) -> str | None:
  problem = _conditional_norm_problem(model, has_batch_norm=False)
  if problem:
    return problem
  if len(data_shape) != 1:
    return (f"is for 2-D points (toy sources), the data has shape "
            f"{tuple(data_shape)}: use the 'dcgan' or 'resnet' presets")
  return None


def _smoke_width(model: ml_collections.ConfigDict) -> None:
  model.width = min(model.width, 8)


def _smoke_dcgan(model: ml_collections.ConfigDict) -> None:
  """Width <= 8 and explicit layouts at 1/16 of their channels (>= 4)."""
  _smoke_width(model)
  shrink = lambda widths: tuple(max(4, w // 16) for w in widths)  # noqa: E731
  if model.generator_base_features:
    model.generator_base_features = shrink([model.generator_base_features])[0]
  model.generator_features = shrink(model.generator_features)
  model.critic_features = shrink(model.critic_features)


@dataclasses.dataclass(frozen=True)
class Arch:
  """One architecture family (config.model.arch).

  Attributes:
    build: (config.model, per-example data shape, compute dtype) ->
      (generator, critic).
    problem: (config.model, data shape) -> why the pair cannot model data of
      that shape, or None; validation turns it into the user's error.
    smoke: shrinks a config.model in place to a network of seconds on a CPU.
    images: True for image data [H, W, C], False for points [D].
  """
  build: Callable[[ml_collections.ConfigDict, Shape, Any],
                  tuple[nn.Module, nn.Module]]
  problem: Callable[[ml_collections.ConfigDict, Shape], str | None]
  smoke: Callable[[ml_collections.ConfigDict], None]
  images: bool = True


ARCHS: dict[str, Arch] = {
    "dcgan": Arch(_build_dcgan, _dcgan_problem, _smoke_dcgan),
    "resnet": Arch(_build_resnet, _resnet_problem, _smoke_width),
    "mlp": Arch(_build_mlp, _points_problem, _smoke_width, images=False),
}


def create_models(model: ml_collections.ConfigDict,
                  data_shape: Shape) -> tuple[nn.Module, nn.Module]:
  """(generator, critic) for `config.model` and per-example data shape.

  Args:
    model: a `presets.model_config(...)` ConfigDict (validated).
    data_shape: (H, W, C) for images, (D,) for toy points.

  Raises:
    ValueError: the architecture cannot model data of this shape
      (validation.check_data_shape reports the same as a ConfigError).
  """
  if model.arch not in ARCHS:
    raise ValueError(f"Unknown config.model.arch {model.arch!r}; use one of "
                     f"{sorted(ARCHS)}.")
  arch = ARCHS[model.arch]
  problem = arch.problem(model, tuple(data_shape))
  if problem:
    raise ValueError(f"config.model.arch={model.arch!r} {problem}.")
  return arch.build(model, tuple(data_shape), jnp.dtype(model.dtype))


def init_variables(module: nn.Module, key: Array, example: Array,
                   labels: Array | None = None) -> dict[str, Any]:
  """Variables of `module` ({'params': ..., 'batch_stats': ...?}) for an example batch."""
  return module.init(key, example, labels, train=False)


@functools.partial(jax.jit, static_argnums=0)
def standing_batch_stats(generator: nn.Module, variables: dict[str, Any],
                         z: Array, labels: Array | None = None) -> Any:
  """The batch statistics of these weights: z [K, B, z_dim] -> batch_stats.

  Each leaf is the mean over the K batches of that batch's mean or (biased)
  variance, as batch norm computes them in train mode: BigGAN's standing
  statistics. A moving average of the weights (config.ema) sampled with the
  raw network's running averages is normalized by another network's
  statistics. `labels` [K, B] for a class-conditional generator.
  """
  zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])

  def add_batch(total, inputs):
    z_batch, labels_batch = inputs
    _, updates = generator.apply(dict(variables, batch_stats=zeros), z_batch,
                                 labels_batch, train=True,
                                 mutable=["batch_stats"])
    # From zeros a running average moves to (1 - momentum) * the batch's.
    return jax.tree.map(lambda t, u: t + u / (1.0 - _BN_MOMENTUM), total,
                        updates["batch_stats"]), None

  total, _ = jax.lax.scan(add_batch, zeros, (z, labels))
  return jax.tree.map(lambda t: t / z.shape[0], total)


def count_params(params: Any) -> int:
  """Number of scalars in a params pytree."""
  return sum(x.size for x in jax.tree.leaves(params))
