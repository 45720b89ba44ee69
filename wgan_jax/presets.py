"""Named architecture presets: the model half of a training config.

A preset is a complete `config.model` ConfigDict. Configs start from one and
override single fields, e.g. `config.model = presets.model_config('dcgan64')`
then `--config.model.kernel_size=5` on the command line. This module imports
no JAX so that configs stay cheap to load.

Fields (all presets carry every field, so a locked config accepts overrides):
  name: the preset's name, recorded in checkpoints.
  arch: 'dcgan' | 'resnet' | 'mlp'.
  z_dim: latent size.
  width: base channel count for layouts derived from the image size (DCGAN:
    the last generator block and the first critic block; ResNet: `dim` of
    Gulrajani et al.; MLP: hidden units).
  kernel_size: square kernel of every DCGAN convolution, unless:
  generator_kernel_sizes / critic_kernel_sizes: one kernel size per
    convolution (the generator: its hidden blocks, then the output layer;
    even sizes only at stride 2); () = kernel_size for every layer.
  generator_base_features: channels of the Dense output reshaped to 4x4 or
    7x7. 0 derives it from the image size and `width`.
  generator_features / generator_strides: the hidden transposed-conv blocks
    after the reshape (equal lengths). () derives a stride-2 pyramid.
  generator_output_stride: stride of the final transposed conv to C channels.
  critic_features / critic_strides: the conv blocks before Dense(1).
  generator_norm: 'batch' | 'none'.
  critic_norm: 'none' | 'layer' | 'batch' (batch only for losses without a
    gradient penalty).
  generator_activation: 'relu' | 'leaky_relu'; the critic always uses LeakyReLU
    (DCGAN) or ReLU (ResNet, MLP), as in the papers.
  leaky_relu_slope: negative slope of every LeakyReLU.
  output_activation: 'tanh' (data in [-1, 1]) | 'sigmoid' (data in [0, 1]) |
    'linear' (2-D toy data).
  init: 'dcgan' (weights ~ N(0, 0.02), biases 0) | 'default' (Flax defaults).
  mlp_layers: hidden layers of the MLP generator and critic.
  num_classes: classes of a class-conditional model; 0 = unconditional (the
    networks take labels=None). It must equal the data's class count.
  generator_conditioning: how a conditional generator takes the label:
    'cbn' (per-class batch-norm scale and shift) | 'concat' (an embedding
    concatenated with z); wgan_jax/conditioning.py.
  critic_conditioning: 'projection' (Miyato & Koyama 2018) | 'ac' (an
    auxiliary classifier head that never sees the label) | 'concat' (label
    planes appended to the image).
  label_embedding_dim: width of the generator's label embedding ('concat').
  dtype: 'float32' | 'bfloat16': the dtype of convolutions and matmuls
    (parameters, batch-norm statistics, outputs and the gradient penalty's
    norm stay float32). bfloat16 is for accelerators; XLA:CPU runs it slower.
"""

from typing import Any

import ml_collections

_BASE: dict[str, Any] = dict(
    name="dcgan",
    arch="dcgan",
    z_dim=128,
    width=64,
    kernel_size=4,
    generator_base_features=0,
    generator_features=(),
    generator_strides=(),
    generator_output_stride=2,
    critic_features=(),
    critic_strides=(),
    generator_kernel_sizes=(),
    critic_kernel_sizes=(),
    generator_norm="batch",
    critic_norm="none",
    generator_activation="relu",
    leaky_relu_slope=0.2,
    output_activation="tanh",
    init="dcgan",
    mlp_layers=3,
    num_classes=0,
    generator_conditioning="cbn",
    critic_conditioning="projection",
    label_embedding_dim=64,
    dtype="float32",
)

# ../shared/bench/SPEC.md `dcgan64`: G 3,821,443 / D 2,764,737 parameters.
_DCGAN64: dict[str, Any] = dict(
    z_dim=128, kernel_size=4, generator_base_features=512,
    generator_features=(256, 128, 64), generator_strides=(2, 2, 2),
    generator_output_stride=2,
    critic_features=(64, 128, 256, 512), critic_strides=(2, 2, 2, 2))


def _half_width(preset: dict[str, Any]) -> dict[str, Any]:
  """A DCGAN preset with every hidden layer's channel count halved."""
  return dict(
      preset,
      generator_base_features=preset["generator_base_features"] // 2,
      generator_features=tuple(f // 2 for f in preset["generator_features"]),
      critic_features=tuple(f // 2 for f in preset["critic_features"]))


PRESETS: dict[str, dict[str, Any]] = {
    # The DCGAN family, sized from the image shape (H = 4*2^n or 7*2^n).
    "dcgan": {},
    "dcgan64": _DCGAN64,
    # dcgan64 at half width (a quarter of the convolution FLOPs): the
    # 64x64 nets of the CPU recipes (configs/*_cpu.py).
    "dcgan64_half": _half_width(_DCGAN64),
    # ../shared/bench/SPEC.md `fmnist28`: G 1,649,089 / D 391,937 parameters.
    "fmnist28": dict(
        z_dim=100, kernel_size=3, generator_base_features=256,
        generator_features=(128, 64), generator_strides=(1, 2),
        generator_output_stride=2,
        critic_features=(32, 64, 128, 256), critic_strides=(2, 2, 2, 1),
        generator_activation="leaky_relu"),
    # The Keras/TF DCGAN tutorial nets of the Fashion-MNIST seeds (k5); the
    # critic's dropout is left out: a gradient-penalty critic must be a
    # deterministic function of its input.
    "fashion_mnist_gan": dict(
        z_dim=100, kernel_size=5, generator_base_features=256,
        generator_features=(128, 64), generator_strides=(1, 2),
        generator_output_stride=2,
        critic_features=(64, 128), critic_strides=(2, 2),
        generator_activation="leaky_relu"),
    # Seed 000's anime WGAN: k5, generator 512/256/128/64/32/3 with two
    # stride-1 layers at full size, sigmoid output; critic k5 32..512.
    "anime_wgan": dict(
        z_dim=128, kernel_size=5, generator_base_features=512,
        generator_features=(256, 128, 64, 32, 32),
        generator_strides=(2, 2, 2, 2, 1), generator_output_stride=1,
        critic_features=(32, 64, 128, 256, 512),
        critic_strides=(2, 2, 2, 2, 1), output_activation="sigmoid"),
    # Gulrajani et al. 2017, gan_cifar_resnet.py: 32x32, dim 128, no critic
    # normalization.
    "resnet32": dict(arch="resnet", z_dim=128, width=128, init="default"),
    # Gulrajani et al. 2017, gan_64x64.py (GoodGenerator/GoodDiscriminator):
    # dim 64, layer norm in the critic's residual blocks.
    "resnet64": dict(arch="resnet", z_dim=128, width=64, critic_norm="layer",
                     init="default"),
    # gan_toy.py: 3 hidden ReLU layers of 512 units, 2-D noise and output.
    "mlp": dict(arch="mlp", z_dim=2, width=512, output_activation="linear",
                generator_norm="none", init="default"),
}


def model_config(preset: str = "dcgan", **overrides: Any) -> ml_collections.ConfigDict:
  """The `config.model` ConfigDict of a named preset, with field overrides."""
  if preset not in PRESETS:
    raise ValueError(f"Unknown model preset {preset!r}; choose one of "
                     f"{sorted(PRESETS)}.")
  fields = dict(_BASE, name=preset, **PRESETS[preset])
  unknown = set(overrides) - set(fields)
  if unknown:
    raise ValueError(f"Unknown model field(s) {sorted(unknown)}; model fields "
                     f"are {sorted(fields)}.")
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)
