"""Specification of wgan_jax.models: shapes, parameter counts, independence."""

import functools
import math

import chex
from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wgan_jax import conditioning
from wgan_jax import models
from wgan_jax import presets
from wgan_jax import train_step

# (preset, data shape, generator params, critic params, generator BN floats).
# dcgan64 and fmnist28 are the counts of the PyTorch reference
# (../shared/bench/SPEC.md section 2). The others are summed by hand, layer by
# layer, below each entry.
PRESET_COUNTS = [
    ("dcgan64", (64, 64, 3), 3_821_443, 2_764_737, 17_280),
    ("fmnist28", (28, 28, 1), 1_649_089, 391_937, 25_472),
    # G: Dense 128->4096 (no bias) 524,288 + BN 8,192; ConvT k4 256->128
    # 524,288 + BN 256; 128->64 131,072 + BN 128; 64->32 32,768 + BN 64;
    # 32->3 1,536 + 3. D: k4 convs 3->32 1,568; 32->64 32,832; 64->128
    # 131,200; 128->256 524,544; Dense 4*4*256 -> 1 4,097.
    ("dcgan64_half", (64, 64, 3), 1_222_595, 694_241, 8_640),
    # G: Dense 100->12544 (no bias) 1,254,400 + BN 25,088; ConvT k5 256->128
    # 819,200 + BN 256; ConvT k5 128->64 204,800 + BN 128; ConvT k5 64->1
    # 1,600 + 1. D: Conv k5 1->64 1,600 + 64; Conv k5 64->128 204,800 + 128;
    # Dense 7*7*128 -> 1 6,273.
    ("fashion_mnist_gan", (28, 28, 1), 2_305_473, 212_865, 25_472),
    # G: Dense 128->8192 1,048,576 + BN 16,384; ConvT k5 512->256 3,276,800 +
    # 512; 256->128 819,200 + 256; 128->64 204,800 + 128; 64->32 51,200 + 64;
    # 32->32 (stride 1) 25,600 + 64; 32->3 2,400 + 3.
    # D: k5 convs 3->32 2,432; 32->64 51,264; 64->128 204,928; 128->256
    # 819,456; 256->512 3,277,312; Dense 4*4*512 -> 1 8,193.
    ("anime_wgan", (64, 64, 3), 5_445_987, 4_363_585, 17_408),
    # G: Dense 128->2048 (+bias) 264,192; 3 up blocks of [1x1 shortcut 16,512,
    # BN 256, conv3x3 no bias 147,456, BN 256, conv3x3 147,584] = 312,064
    # each; BN 256; conv3x3 128->3 3,459.
    ("resnet32", (32, 32, 3), 1_204_099, 1_053_825, 1_792),
    # gan_toy.py: Dense 2->512, 512->512 x2, 512->2 (G) / 512->1 (D).
    ("mlp", (2,), 527_874, 527_361, 0),
]


def _abstract_init(preset: str, data_shape: tuple[int, ...], batch: int = 2):
  """Shapes only (jax.eval_shape): variables, samples and scores of a preset."""
  model = presets.model_config(preset)
  generator, critic = models.create_models(model, data_shape)
  z = jax.ShapeDtypeStruct((batch, model.z_dim), jnp.float32)
  key = jax.random.key(0)
  g_vars = jax.eval_shape(functools.partial(models.init_variables, generator), key, z)
  x = jax.eval_shape(lambda v, z: generator.apply(v, z, train=False), g_vars, z)
  d_vars = jax.eval_shape(functools.partial(models.init_variables, critic), key, x)
  scores = jax.eval_shape(critic.apply, d_vars, x)
  return g_vars, d_vars, x, scores


@pytest.mark.parametrize("preset,shape,g_count,d_count,bn_count", PRESET_COUNTS)
def test_preset_shapes_and_parameter_counts(preset, shape, g_count, d_count,
                                            bn_count):
  g_vars, d_vars, x, scores = _abstract_init(preset, shape)
  assert x.shape == (2,) + shape
  assert scores.shape == (2,)
  assert models.count_params(g_vars["params"]) == g_count
  assert models.count_params(d_vars["params"]) == d_count
  assert models.count_params(g_vars.get("batch_stats", {})) == bn_count


def test_resnet64_matches_gan_64x64_layout():
  g_vars, d_vars, x, _ = _abstract_init("resnet64", (64, 64, 3))
  assert x.shape == (2, 64, 64, 3)
  # Dense 128 -> 4*4*512, then up blocks 512->512->256->128->64.
  assert g_vars["params"]["Dense_0"]["kernel"].shape == (128, 4 * 4 * 512)
  widths = [g_vars["params"][f"ResidualBlock_{i}"]["conv2"]["kernel"].shape[-1]
            for i in range(4)]
  assert widths == [512, 256, 128, 64]
  # Critic: conv 3->64, down blocks to 128, 256, 512, 512 at 4x4, Dense(8192->1).
  assert d_vars["params"]["Dense_0"]["kernel"].shape == (4 * 4 * 512, 1)
  assert "LayerNorm_0" in d_vars["params"]["ResidualBlock_0"]


@pytest.mark.parametrize("image_size,channels", [(28, 1), (32, 3), (64, 3), (128, 1)])
def test_dcgan_family_is_sized_from_the_image(image_size, channels):
  model = presets.model_config("dcgan", width=8)
  layout = models.dcgan_layout(model, image_size)
  base = 7 if image_size % 7 == 0 else 4
  n = round(math.log2(image_size / base))
  assert layout["generator_base_features"] == 8 * 2 ** (n - 1)
  assert len(layout["critic_features"]) == n
  generator, critic = models.create_models(model, (image_size, image_size, channels))
  z = jnp.ones((3, model.z_dim))
  g_vars = models.init_variables(generator, jax.random.key(0), z)
  x = generator.apply(g_vars, z, train=False)
  chex.assert_shape(x, (3, image_size, image_size, channels))
  d_vars = models.init_variables(critic, jax.random.key(1), x)
  chex.assert_shape(critic.apply(d_vars, x), (3,))


@pytest.mark.parametrize("size", [30, 48, 3])
def test_image_sizes_outside_the_family_are_refused(size):
  with pytest.raises(ValueError, match="4\\*2\\^n or 7\\*2\\^n"):
    models.create_models(presets.model_config("dcgan"), (size, size, 3))
  assert "4*2^n or 7*2^n" in models.ARCHS["dcgan"].problem(
      presets.model_config("dcgan"), (size, size, 3))


@pytest.mark.parametrize("kernel_size, refused", [(4, True), (3, False),
                                                   (5, False)])
def test_even_kernels_are_refused_where_a_generator_layer_has_stride_1(
    kernel_size, refused):
  # fmnist28's generator has a stride-1 layer (7x7 -> 7x7); dcgan64 has none.
  model = presets.model_config("fmnist28")
  model.kernel_size = kernel_size
  problem = models.ARCHS["dcgan"].problem(model, (28, 28, 1))
  assert (problem is not None and "odd kernel" in problem) == refused
  if refused:
    assert "generator_kernel_sizes=(3, 4, 4)" in problem  # the suggested fix
    with pytest.raises(ValueError, match="kernel_size=4"):
      models.create_models(model, (28, 28, 1))
  even = presets.model_config("dcgan64")
  assert even.kernel_size == 4
  assert models.ARCHS["dcgan"].problem(even, (64, 64, 3)) is None


def _kernel_shapes(variables, prefix):
  params = variables["params"]
  return [params[f"{prefix}_{i}"]["kernel"].shape[:2]
          for i in range(sum(k.startswith(prefix + "_") for k in params))]


def test_kernel_sizes_can_be_set_per_convolution():
  # fmnist28 with 4x4 kernels where the generator doubles the size (an even
  # overlap) and the stride-1 7x7 layer kept at 3x3.
  model = presets.model_config("fmnist28", generator_kernel_sizes=(3, 4, 4),
                               critic_kernel_sizes=(4, 4, 4, 3))
  assert models.ARCHS["dcgan"].problem(model, (28, 28, 1)) is None
  generator, critic = models.create_models(model, (28, 28, 1))
  z = jnp.ones((2, model.z_dim))
  g_vars = models.init_variables(generator, jax.random.key(0), z)
  x = generator.apply(g_vars, z, train=False)
  chex.assert_shape(x, (2, 28, 28, 1))
  assert _kernel_shapes(g_vars, "ConvTranspose") == [(3, 3), (4, 4), (4, 4)]
  d_vars = models.init_variables(critic, jax.random.key(1), x)
  assert _kernel_shapes(d_vars, "Conv") == [(4, 4), (4, 4), (4, 4), (3, 3)]
  chex.assert_shape(critic.apply(d_vars, x), (2,))


def test_empty_kernel_sizes_repeat_kernel_size():
  shape = (28, 28, 1)
  z = jax.random.normal(jax.random.key(2), (3, 100))
  outputs = []
  for sizes in ((), (3, 3, 3)):
    model = presets.model_config("fmnist28", generator_kernel_sizes=sizes)
    generator, _ = models.create_models(model, shape)
    g_vars = models.init_variables(generator, jax.random.key(0), z)
    outputs.append(generator.apply(g_vars, z, train=False))
  np.testing.assert_array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize("field, sizes, message", [
    ("generator_kernel_sizes", (4, 4),
     "one kernel size per convolution in config.model.generator_kernel_sizes "
     "\\(3"),
    ("critic_kernel_sizes", (4, 4, 4),
     "per convolution in config.model.critic_kernel_sizes \\(4\\)"),
    ("critic_kernel_sizes", (4, 0, 4, 3), "needs positive kernel sizes"),
    ("generator_kernel_sizes", (4, 4, 4),
     "generator_kernel_sizes=\\(4, 4, 4\\) gives layer\\(s\\) \\[0\\] an even one"),
])
def test_kernel_sizes_that_do_not_fit_the_layers_are_refused(field, sizes,
                                                             message):
  model = presets.model_config("fmnist28", **{field: sizes})
  with pytest.raises(ValueError, match=message):
    models.create_models(model, (28, 28, 1))


def test_a_4x4_stride_2_transposed_convolution_has_no_checkerboard():
  # Why 4x4: at stride 2 each output pixel of a k x k transposed convolution
  # sums ceil or floor of k/2 taps per axis, uneven for odd k.
  x = jnp.ones((1, 6, 6, 1))
  counts = {}
  for k in (3, 4):
    layer = models.ConvTranspose(1, k, 2, use_bias=False,
                                 kernel_init=nn.initializers.ones)
    y = layer.apply(layer.init(jax.random.key(0), x), x)[0, 2:-2, 2:-2, 0]
    counts[k] = np.unique(np.asarray(y))
  np.testing.assert_array_equal(counts[4], [4.0])  # 2 x 2 taps everywhere
  np.testing.assert_array_equal(counts[3], [1.0, 2.0, 4.0])  # 1 or 2 per axis


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_every_preset_names_a_registered_architecture_that_supports_its_data(preset):
  model = presets.model_config(preset)
  arch = models.ARCHS[model.arch]
  shape = {"fmnist28": (28, 28, 1), "fashion_mnist_gan": (28, 28, 1),
           "resnet32": (32, 32, 3), "mlp": (2,)}.get(preset, (64, 64, 3))
  assert arch.problem(model, shape) is None
  assert arch.images == (len(shape) == 3)


@pytest.mark.parametrize("arch", sorted(models.ARCHS))
def test_each_architecture_shrinks_itself_for_smoke_runs(arch):
  # Table-driven: a new entry of models.ARCHS is covered with no edit here.
  preset = {"dcgan": "dcgan64", "resnet": "resnet32", "mlp": "mlp"}.get(arch)
  model = presets.model_config(preset)
  shape = {"dcgan": (64, 64, 3), "resnet": (32, 32, 3), "mlp": (2,)}[arch]
  full = _count(model, shape)
  models.ARCHS[arch].smoke(model)
  small = _count(model, shape)
  assert small * 20 < full, (small, full)
  assert models.ARCHS[arch].problem(model, shape) is None


def _count(model, shape):
  generator, critic = models.create_models(model, shape)
  z = jax.ShapeDtypeStruct((1, model.z_dim), jnp.float32)
  x = jax.ShapeDtypeStruct((1,) + shape, jnp.float32)
  key = jax.random.key(0)
  return sum(models.count_params(jax.eval_shape(
      functools.partial(models.init_variables, m), key, e)["params"])
             for m, e in ((generator, z), (critic, x)))


def test_unconditional_networks_refuse_labels():
  model = presets.model_config("dcgan", width=4)
  generator, _ = models.create_models(model, (16, 16, 3))
  z = jnp.ones((2, model.z_dim))
  g_vars = models.init_variables(generator, jax.random.key(0), z)
  with pytest.raises(ValueError, match="unconditional"):
    generator.apply(g_vars, z, jnp.zeros(2, jnp.int32), train=False)


_STANDING_CASES = [
    ("dcgan", (16, 16, 3), dict(width=4)),
    ("resnet32", (32, 32, 3), dict(width=8, num_classes=3)),  # per-class BN
]


def _init_variables(module, key, *inputs):
  """models.init_variables, compiled as train_step compiles initializers.

  Op by op, resnet64's initialization alone took 26 s here (4.8 s so).
  """
  init = train_step.compile_once(jax.jit(
      functools.partial(models.init_variables, module)).lower(key, *inputs))
  return init(key, *inputs)


def _generator_with_noise(preset, shape, overrides, batches, batch=8):
  model = presets.model_config(preset, **overrides)
  generator, _ = models.create_models(model, shape)
  z = jax.random.normal(jax.random.key(0), (batches, batch, model.z_dim))
  labels = (jax.random.randint(jax.random.key(1), (batches, batch), 0,
                               model.num_classes)
            if model.num_classes else None)
  variables = _init_variables(generator, jax.random.key(2), z[0],
                              None if labels is None else labels[0])
  return generator, variables, z, labels


@pytest.mark.parametrize("preset,shape,overrides", _STANDING_CASES)
def test_standing_statistics_of_one_batch_make_eval_mode_train_mode(
    preset, shape, overrides):
  # Eval mode normalizes with the given statistics, train mode with the
  # batch's: on the batch the statistics came from, the two are one function.
  generator, variables, z, labels = _generator_with_noise(preset, shape,
                                                          overrides, 1)
  labels_0 = None if labels is None else labels[0]
  train_mode, _ = generator.apply(variables, z[0], labels_0, train=True,
                                  mutable=["batch_stats"])
  running = generator.apply(variables, z[0], labels_0, train=False)
  standing = dict(variables, batch_stats=models.standing_batch_stats(
      generator, variables, z, labels))
  eval_mode = generator.apply(standing, z[0], labels_0, train=False)
  assert float(jnp.max(jnp.abs(running - train_mode))) > 1e-2
  np.testing.assert_allclose(eval_mode, train_mode, atol=2e-5)


@pytest.mark.parametrize("preset,shape,overrides", _STANDING_CASES)
def test_standing_statistics_are_the_mean_of_the_batches_statistics(
    preset, shape, overrides):
  generator, variables, z, labels = _generator_with_noise(preset, shape,
                                                          overrides, 3)
  each = [models.standing_batch_stats(
      generator, variables, z[k:k + 1],
      None if labels is None else labels[k:k + 1]) for k in range(3)]
  expected = jax.tree.map(lambda *s: sum(s) / 3, *each)
  chex.assert_trees_all_close(
      models.standing_batch_stats(generator, variables, z, labels), expected,
      rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation,low,high", [("tanh", -1, 1), ("sigmoid", 0, 1)])
def test_generator_output_lies_in_the_activation_range(activation, low, high):
  model = presets.model_config("dcgan", width=4, output_activation=activation)
  generator, _ = models.create_models(model, (16, 16, 3))
  z = 50.0 * jax.random.normal(jax.random.key(0), (8, model.z_dim))
  g_vars = models.init_variables(generator, jax.random.key(1), z)
  x = generator.apply(g_vars, z, train=False)
  assert bool(jnp.all(jnp.isfinite(x)))
  assert float(x.min()) >= low and float(x.max()) <= high
  assert float(x.max() - x.min()) > 0.1  # not collapsed to a constant


def _cross_sample_jacobian(critic, variables, x, labels=None):
  """max |dD(x)_i / dx_j| over i != j, and over i == j."""
  batch = x.shape[0]
  def scores(v):
    if "batch_stats" in variables:  # train mode: batch statistics
      return critic.apply(variables, v, labels, train=True,
                          mutable=["batch_stats"])[0]
    return conditioning.critic_scores(critic.apply(variables, v, labels))
  jac = jax.jit(jax.jacrev(scores))(x)
  jac = jnp.abs(jac.reshape(batch, batch, -1)).max(axis=-1)
  off_diagonal = jac * (1 - jnp.eye(batch))
  return float(off_diagonal.max()), float(jnp.diagonal(jac).min())


@pytest.mark.parametrize("preset,shape,overrides", [
    ("dcgan", (16, 16, 3), dict(width=4)),
    ("dcgan", (16, 16, 3), dict(width=4, critic_norm="layer")),
    ("resnet32", (32, 32, 3), dict(width=8)),
    ("resnet64", (64, 64, 3), dict(width=2)),
    ("mlp", (2,), dict(width=16)),
    # Class-conditional critics: every way of taking the label.
    ("dcgan", (16, 16, 3), dict(width=4, num_classes=3,
                                critic_conditioning="projection")),
    ("dcgan", (16, 16, 3), dict(width=4, num_classes=3,
                                critic_conditioning="ac")),
    ("dcgan", (16, 16, 3), dict(width=4, num_classes=3,
                                critic_conditioning="concat")),
    ("resnet32", (32, 32, 3), dict(width=8, num_classes=3,
                                   critic_conditioning="projection")),
    ("mlp", (2,), dict(width=16, num_classes=3, critic_conditioning="concat",
                       generator_conditioning="concat")),
])
def test_gradient_penalty_critics_treat_samples_independently(preset, shape,
                                                              overrides):
  model = presets.model_config(preset, **overrides)
  _, critic = models.create_models(model, shape)
  x = jax.random.normal(jax.random.key(0), (4,) + shape)
  labels = (jnp.array([0, 1, 2, 1], jnp.int32) if model.num_classes
            else None)
  variables = _init_variables(critic, jax.random.key(1), x, labels)
  off, diag = _cross_sample_jacobian(critic, variables, x, labels)
  assert off == 0.0
  assert diag > 0.0


def test_batch_norm_critic_couples_samples():
  # The check above must be able to fail: batch norm mixes samples.
  model = presets.model_config("dcgan", width=4, critic_norm="batch")
  _, critic = models.create_models(model, (16, 16, 3))
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  variables = models.init_variables(critic, jax.random.key(1), x)
  off, _ = _cross_sample_jacobian(critic, variables, x)
  assert off > 1e-6


@pytest.mark.parametrize("kernel,stride,size", [(4, 2, 5), (3, 2, 7), (3, 1, 7),
                                                (5, 2, 4), (5, 1, 4)])
def test_conv_layers_match_torch(kernel, stride, size):
  torch = pytest.importorskip("torch", reason="torch (CPU) is a test-only "
                              "dependency: pip install torch==2.13.0")
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
  x_torch = torch.from_numpy(x.transpose(0, 3, 1, 2))
  pad = (kernel - 1) // 2

  conv = models.Conv(4, kernel, stride)
  variables = conv.init(jax.random.key(0), x)
  tconv = torch.nn.Conv2d(3, 4, kernel, stride, padding=pad)
  with torch.no_grad():
    tconv.weight.copy_(torch.from_numpy(np.asarray(
        variables["params"]["kernel"]).transpose(3, 2, 0, 1).copy()))
    tconv.bias.copy_(torch.from_numpy(np.array(variables["params"]["bias"])))
    expected = tconv(x_torch).numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(conv.apply(variables, x), expected, atol=1e-5)

  deconv = models.ConvTranspose(4, kernel, stride)
  variables = deconv.init(jax.random.key(1), x)
  kernel_flax = np.asarray(variables["params"]["kernel"])
  tdeconv = torch.nn.ConvTranspose2d(3, 4, kernel, stride, padding=pad,
                                     output_padding=stride + 2 * pad - kernel)
  with torch.no_grad():
    # Flax (kh, kw, out, in) with transpose_kernel=True is torch's (in, out, kh, kw).
    tdeconv.weight.copy_(torch.from_numpy(kernel_flax.transpose(3, 2, 0, 1).copy()))
    tdeconv.bias.copy_(torch.from_numpy(np.array(
        variables["params"]["bias"])))
    expected = tdeconv(x_torch).numpy().transpose(0, 2, 3, 1)
  out = deconv.apply(variables, x)
  chex.assert_shape(out, (2, size * stride, size * stride, 4))
  np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("preset,shape,overrides", [
    ("dcgan", (16, 16, 3), dict(width=4)),
    ("resnet32", (32, 32, 3), dict(width=8)),
    ("mlp", (2,), dict(width=16)),
])
def test_bfloat16_compute_keeps_float32_parameters_and_outputs(preset, shape, overrides):
  results = {}
  for dtype in ("float32", "bfloat16"):
    model = presets.model_config(preset, dtype=dtype, **overrides)
    generator, critic = models.create_models(model, shape)
    z = jax.random.normal(jax.random.key(0), (4, model.z_dim))
    g_vars = _init_variables(generator, jax.random.key(1), z)
    x = generator.apply(g_vars, z, train=False)
    d_vars = _init_variables(critic, jax.random.key(2), x)
    scores = critic.apply(d_vars, x)
    assert x.dtype == jnp.float32 and scores.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves((g_vars, d_vars)))
    results[dtype] = (x, scores)
  # Same parameters (same keys): bfloat16 keeps 8 significant bits (0.4%
  # per rounding), so outputs and scores agree to a few percent of their own
  # scale (measured: 0.3-2.3%), whatever that scale is (DCGAN's N(0, 0.02)
  # init gives outputs of ~4e-3 and scores of ~3e-6).
  for i in (0, 1):
    low, high = np.asarray(results["bfloat16"][i]), np.asarray(results["float32"][i])
    scale = np.abs(high).max()
    assert scale > 0
    assert np.abs(low - high).max() <= 0.05 * scale
    assert not np.array_equal(low, high)
