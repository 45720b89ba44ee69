"""Specification of the compiled train step against a plain Python reference.

conftest.py gives this process 8 fake CPU devices.
"""

import functools
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from wgan_jax import losses
from wgan_jax import parallel
from wgan_jax import presets
from wgan_jax import train_step
from wgan_jax import validation

IMAGE_SHAPE = (16, 16, 3)


def _config(loss: str = "wgan-gp", n_critic: int = 3, batch_size: int = 8, **model):
  config = default.get_config()
  config.loss = loss
  config.n_critic = n_critic
  config.batch_size = batch_size
  config.num_train_steps = 100
  config.model = presets.model_config("dcgan", width=4, z_dim=8, **model)
  # Adaptive optimizers' first update is ~lr * g / (|g| + eps): with a tiny
  # eps it is ~lr * sign(g), which turns float rounding of near-zero
  # gradients into lr-sized differences. A larger eps keeps the comparison
  # of implementations sharp; optimizer numerics are tested on their own.
  config.optimizer.eps = 1e-3
  if loss == "wgan":
    config.optimizer.name = "rmsprop"
    config.optimizer.critic_learning_rate = 5e-3
    config.optimizer.generator_learning_rate = 5e-3
  elif loss == "dcgan":
    config.optimizer.b1, config.optimizer.b2 = 0.5, 0.999
    config.optimizer.critic_learning_rate = 2e-3
    config.optimizer.generator_learning_rate = 2e-3
  else:
    config.optimizer.critic_learning_rate = 1e-3
    config.optimizer.generator_learning_rate = 1e-3
  validation.validate(config)
  return config


def _reals(config, seed: int = 0, steps: int = 1):
  rng = np.random.default_rng(seed)
  shape = (steps, config.n_critic, config.batch_size) + IMAGE_SHAPE
  return rng.integers(0, 256, shape, dtype=np.uint8)


def _copy(tree):
  return jax.tree.map(lambda x: np.array(x), tree)


def _reference_step(config, gan, state, reals):
  """n_critic critic updates and one generator update, written out plainly.

  Shares only the randomness (train_step.step_noise, part of the spec) and the
  modules with the code under test; losses, penalty, optimizers and clipping
  are written here from the papers.
  """
  opt = config.optimizer
  if opt.name == "adam":
    make_tx = lambda lr: optax.adam(lr, b1=opt.b1, b2=opt.b2, eps=opt.eps)  # noqa: E731
  else:
    make_tx = lambda lr: optax.rmsprop(lr, decay=opt.rmsprop_decay, eps=opt.eps,  # noqa: E731
                                       eps_in_sqrt=False)
  critic_tx = make_tx(opt.critic_learning_rate)
  generator_tx = make_tx(opt.generator_learning_rate)
  noise = train_step.step_noise(gan, state.step)
  g_vars = {"params": state.generator.params,
            "batch_stats": state.generator.batch_stats}
  c_params, c_stats = state.critic.params, state.critic.batch_stats
  c_opt = critic_tx.init(c_params)  # the reference starts at step 0
  has_critic_bn = bool(c_stats)

  def critic(params, stats, x):
    if has_critic_bn:
      out, new = gan.critic.apply({"params": params, "batch_stats": stats}, x,
                                  train=True, mutable=["batch_stats"])
      return out, new["batch_stats"]
    return gan.critic.apply({"params": params}, x), stats

  for i in range(config.n_critic):
    real = jnp.asarray(reals[i], jnp.float32) / 127.5 - 1.0
    fake, new = gan.generator.apply(g_vars, noise.critic_z[i], train=True,
                                    mutable=["batch_stats"])
    g_vars = {"params": g_vars["params"], "batch_stats": new["batch_stats"]}
    fake = jax.lax.stop_gradient(fake)
    eps = noise.eps[i][:, None, None, None]

    def critic_loss(params, stats):
      d_real, stats = critic(params, stats, real)
      d_fake, stats = critic(params, stats, fake)
      if config.loss == "dcgan":
        loss = (-jnp.mean(jnp.log(jax.nn.sigmoid(d_real)))
                - jnp.mean(jnp.log(1 - jax.nn.sigmoid(d_fake))))
      else:
        loss = jnp.mean(d_fake) - jnp.mean(d_real)
      if config.loss == "wgan-gp":
        x_hat = eps * real + (1 - eps) * fake
        g = jax.grad(lambda x: jnp.sum(critic(params, stats, x)[0]))(x_hat)
        slopes = jnp.sqrt(jnp.sum(g ** 2, axis=(1, 2, 3)))
        loss += config.gp_weight * jnp.mean((slopes - 1) ** 2)
      return loss, stats

    grads, c_stats = jax.grad(critic_loss, has_aux=True)(c_params, c_stats)
    updates, c_opt = critic_tx.update(grads, c_opt, c_params)
    c_params = optax.apply_updates(c_params, updates)
    if config.loss == "wgan":
      c_params = jax.tree.map(lambda p: jnp.clip(p, -config.clip_value,
                                                 config.clip_value), c_params)

  def generator_loss(params, stats):
    fake, new = gan.generator.apply({"params": params, "batch_stats": stats},
                                    noise.generator_z, train=True,
                                    mutable=["batch_stats"])
    d_fake, _ = critic(c_params, c_stats, fake)
    if config.loss == "dcgan":
      return -jnp.mean(jnp.log(jax.nn.sigmoid(d_fake))), new["batch_stats"]
    return -jnp.mean(d_fake), new["batch_stats"]

  g_opt = generator_tx.init(g_vars["params"])
  grads, g_stats = jax.grad(generator_loss, has_aux=True)(
      g_vars["params"], g_vars["batch_stats"])
  updates, g_opt = generator_tx.update(grads, g_opt, g_vars["params"])
  g_params = optax.apply_updates(g_vars["params"], updates)
  return g_params, g_stats, c_params, c_stats


@pytest.mark.parametrize("loss,model", [
    ("wgan-gp", {}),
    ("wgan-gp", dict(critic_norm="layer")),
    ("wgan", {}),
    ("dcgan", dict(critic_norm="batch")),
])
@pytest.mark.parametrize("critic_loop", ["unroll", "scan"])
def test_step_equals_python_loop_reference(loss, model, critic_loop):
  config = _config(loss, **model)
  config.critic_loop = critic_loop
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  state = train_step.create_train_state(gan)
  reals = _reals(config)[0]
  initial = _copy(state)
  expected = jax.jit(functools.partial(_reference_step, config, gan))(initial, reals)
  step = train_step.make_train_step(gan, parallel.make_mesh(jax.devices()[:1]))
  new_state, metrics = step(state, {"image": reals})
  got = (new_state.generator.params, new_state.generator.batch_stats,
         new_state.critic.params, new_state.critic.batch_stats)
  chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)
  assert int(new_state.step) == 1
  assert all(np.isfinite(float(v)) for v in metrics.values())
  # Both networks moved, so the comparison above is not of two no-ops.
  for before, after in ((initial.generator.params, expected[0]),
                        (initial.critic.params, expected[2])):
    assert not np.allclose(jax.tree.leaves(before)[0], jax.tree.leaves(after)[0])


def test_metrics_name_the_objective_terms():
  config = _config("wgan-gp")
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  step = train_step.make_train_step(gan, parallel.make_mesh())
  _, metrics = step(train_step.init_state_on_mesh(gan, parallel.make_mesh()),
                    {"image": _reals(config)[0]})
  for name in ("critic/loss", "critic/wasserstein", "critic/gradient_penalty",
               "critic/grad_norm", "critic/input_grad_norm", "generator/loss",
               "generator/grad_norm"):
    assert name in metrics
  np.testing.assert_allclose(
      metrics["critic/wasserstein"], metrics["critic/real"] - metrics["critic/fake"],
      rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss,model", [
    ("wgan-gp", {}),
    ("wgan", {}),
    # Batch norm in the critic: its statistics must be over the global batch.
    ("dcgan", dict(critic_norm="batch")),
])
def test_eight_devices_equal_one_device_for_the_same_global_batch(loss, model):
  assert jax.device_count() == 8, "conftest.py should give 8 CPU devices"
  config = _config(loss, batch_size=16, **model)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  reals = _reals(config, steps=3)
  finals = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    step = train_step.make_train_step(gan, mesh)
    state = train_step.init_state_on_mesh(gan, mesh)
    for r in reals:
      state, _ = step(state, {"image": r})
    finals.append(_copy(state))
  chex.assert_trees_all_close(finals[0], finals[1], rtol=1e-4, atol=1e-6)


def test_batch_is_split_over_devices():
  config = _config(batch_size=16)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  mesh = parallel.make_mesh()
  step = train_step.make_train_step(gan, mesh)
  lowered = step.lower(train_step.init_state_on_mesh(gan, mesh),
                       {"image": _reals(config)[0]})
  # Each device's share of the [n_critic, B, ...] input is B / 8 examples.
  assert lowered.compile().input_shardings[0][1]["image"].shard_shape(
      (config.n_critic, 16) + IMAGE_SHAPE)[1] == 2


def test_a_batch_that_does_not_split_over_devices_is_refused():
  config = _config(batch_size=12)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  with pytest.raises(validation.ConfigError, match="multiple of 8"):
    train_step.make_train_step(gan, parallel.make_mesh())


@pytest.mark.parametrize("loss", ["wgan-gp", "wgan"])
def test_the_initial_state_on_the_mesh_is_bitwise_the_default_compilation(loss):
  # init_state_on_mesh compiles with LLVM -O1 on CPU; the state must not
  # depend on that (a seed's run starts from the same weights).
  gan = train_step.create_gan(_config(loss), IMAGE_SHAPE)
  expected = jax.jit(functools.partial(train_step.create_train_state, gan))()
  got = train_step.init_state_on_mesh(gan, parallel.make_mesh())
  chex.assert_trees_all_equal(jax.device_get(got), jax.device_get(expected))
  assert max(np.std(x) for x in jax.tree.leaves(got.generator.params)) > 0


def test_steps_compile_once():
  config = _config()
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  mesh = parallel.make_mesh()
  counted = chex.assert_max_traces(train_step.train_step, n=1)
  step = train_step.make_train_step(gan, mesh, step_fn=counted)
  state = train_step.init_state_on_mesh(gan, mesh)
  for r in _reals(config, steps=3):
    state, _ = step(state, {"image": r})
  assert int(state.step) == 3


def test_randomness_is_a_function_of_seed_and_step():
  gan = train_step.create_gan(_config(), IMAGE_SHAPE)
  a, b = train_step.step_noise(gan, 5), train_step.step_noise(gan, 5)
  chex.assert_trees_all_equal(a, b)
  c = train_step.step_noise(gan, 6)
  assert not np.allclose(a.critic_z, c.critic_z)
  # Each critic update has its own noise and interpolation weights.
  assert not np.allclose(a.critic_z[0], a.critic_z[1])
  assert not np.allclose(a.eps[0], a.eps[1])
  config = _config()
  config.seed = 1
  other_seed = train_step.create_gan(config, IMAGE_SHAPE)
  assert not np.allclose(train_step.step_noise(other_seed, 5).critic_z, a.critic_z)


def test_random_flip_mirrors_the_real_images_the_step_noise_marks():
  config = _config()
  config.data.random_flip = True
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  noise = train_step.step_noise(gan, 0)
  reals = _reals(config)[0]
  prepared = train_step.prepare_reals(gan, reals, noise.flips)
  assert 0 < int(noise.flips.sum()) < noise.flips.size
  scaled = reals.astype(np.float32) / 127.5 - 1
  expected = np.where(np.asarray(noise.flips)[..., None, None, None],
                      scaled[:, :, :, ::-1], scaled)
  np.testing.assert_allclose(prepared, expected, atol=1e-6)


def _mode_statistics(points, modes, radius):
  """(fraction of points within `radius` of a mode, smallest per-mode share)."""
  distances = np.linalg.norm(points[:, None] - modes[None], axis=-1)
  near = distances.min(axis=1) < radius
  shares = np.bincount(distances.argmin(axis=1)[near], minlength=len(modes))
  return near.mean(), shares.min() / len(points)


def test_wgan_gp_learns_the_eight_gaussians():
  """The WGAN-GP paper's sanity check, in 500 generator steps on CPU.

  Modes lie on a circle of radius 1.41 (adjacent modes 1.08 apart, std
  0.014). Passing means: at least 70% of 2000 samples lie within 0.25 of a
  mode, and every one of the 8 modes holds at least 4% of all samples (a
  third of its fair share), so no mode is dropped.
  """
  from configs import toy_wgangp  # pylint: disable=g-import-not-at-top
  from wgan_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  config = toy_wgangp.get_config()
  config.model.width = 128
  config.num_train_steps = 500
  data = data_lib.load_dataset(config.data, seed=config.seed)
  gan = train_step.create_gan(config, (2,))
  mesh = parallel.make_mesh(jax.devices()[:1])
  step = train_step.make_train_step(gan, mesh)
  state = train_step.init_state_on_mesh(gan, mesh)
  modes = data_lib.toy_modes("8gaussians")
  z = jax.random.normal(jax.random.key(123), (2000, config.model.z_dim))
  sample = lambda s: np.asarray(gan.generator.apply(  # noqa: E731
      s.generator.variables, z))

  near_before, _ = _mode_statistics(sample(state), modes, 0.25)
  for i in range(config.num_train_steps):
    idx = data_lib.batch_indices(data.num_examples, config.seed, i,
                                 config.n_critic, config.batch_size)
    state, _ = step(state, {"image": data.examples[idx]})
  near, smallest_mode_share = _mode_statistics(sample(state), modes, 0.25)

  assert near_before < 0.2  # the untrained generator fails this check
  assert near >= 0.7
  assert smallest_mode_share >= 0.04


def test_gathering_on_device_equals_feeding_gathered_batches():
  config = _config(batch_size=16)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(1)
  arrays = {"image": rng.integers(0, 256, (40,) + IMAGE_SHAPE, dtype=np.uint8),
            "label": rng.integers(0, 3, 40).astype(np.int32)}
  indices = np.random.default_rng(2).integers(0, 40, (config.n_critic, 16)).astype(np.int32)
  fed = train_step.make_train_step(gan, mesh)
  gathered = train_step.make_train_step(gan, mesh,
                                        step_fn=train_step.train_step_on_device_data)
  a, _ = fed(train_step.init_state_on_mesh(gan, mesh),
             {k: v[indices] for k, v in arrays.items()})
  b, _ = gathered(train_step.init_state_on_mesh(gan, mesh),
                  jax.device_put(arrays, parallel.replicated(mesh)), indices)
  chex.assert_trees_all_equal(jax.device_get(a), jax.device_get(b))


def test_the_gathered_batch_is_the_dict_of_the_indexed_examples():
  # The step sees exactly arrays[k][indices] for every key (labels too).
  config = _config(batch_size=8, n_critic=2)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  rng = np.random.default_rng(3)
  arrays = {"image": rng.integers(0, 256, (20,) + IMAGE_SHAPE, dtype=np.uint8),
            "label": np.arange(20, dtype=np.int32)}
  indices = rng.integers(0, 20, (2, 8)).astype(np.int32)

  def spy(gan, state, batch, data_sharding=None):
    del gan, data_sharding
    return state, batch  # the batch comes back as the "metrics"

  with mock.patch.object(train_step, "train_step", spy):
    _, seen = jax.jit(functools.partial(
        train_step.train_step_on_device_data, gan))(
            train_step.create_train_state(gan), arrays, indices)
  assert set(seen) == {"image", "label"}
  np.testing.assert_array_equal(np.asarray(seen["label"]), indices)
  np.testing.assert_array_equal(np.asarray(seen["image"]),
                                arrays["image"][indices])


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_of_the_table_trains_a_finite_step(loss):
  # Table-driven: a new entry in losses.LOSSES is covered with no edit here.
  config = _config("wgan-gp")
  config.loss = loss
  validation.validate(config)
  gan = train_step.create_gan(config, IMAGE_SHAPE)
  state = train_step.create_train_state(gan)
  before = _copy(state)
  new_state, metrics = jax.jit(functools.partial(train_step.train_step, gan))(
      state, {"image": _reals(config)[0]})
  assert all(np.isfinite(float(v)) for v in metrics.values())
  assert ("critic/gradient_penalty" in metrics) == (
      losses.LOSSES[loss].penalty is not None)
  for net in ("generator", "critic"):
    assert not np.allclose(jax.tree.leaves(getattr(before, net).params)[0],
                           jax.tree.leaves(getattr(new_state, net).params)[0])
