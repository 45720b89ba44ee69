"""Specification of DiffAugment (wgan_jax.augment) and its place in the step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from wgan_jax import augment
from wgan_jax import models
from wgan_jax import presets
from wgan_jax import train_step
from wgan_jax import validation
from wgan_jax.errors import ConfigError

POLICY = ("color", "translation", "cutout")


def _images(b=4, size=16, c=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (b, size, size, c)) * 2 - 1


def test_an_empty_policy_is_the_identity_and_a_policy_is_a_function_of_the_key():
  x = _images()
  np.testing.assert_array_equal(augment.diff_augment(jax.random.key(0), x, (),
                                                     -1, 1), x)
  a = augment.diff_augment(jax.random.key(1), x, POLICY, -1, 1)
  np.testing.assert_array_equal(a, augment.diff_augment(jax.random.key(1), x,
                                                        POLICY, -1, 1))
  assert not np.allclose(a, augment.diff_augment(jax.random.key(2), x, POLICY,
                                                 -1, 1))


@pytest.mark.parametrize("name", sorted(augment.AUGMENTATIONS))
def test_each_augmentation_is_differentiable_and_per_sample(name):
  x = _images(b=3, size=8)
  key = jax.random.key(3)
  f = lambda v: augment.diff_augment(key, v, (name,), -1, 1)  # noqa: E731
  jac = jax.jacrev(lambda v: f(v).reshape(3, -1).sum(1))(x)  # [3, 3, 8, 8, 3]
  jac = np.abs(np.asarray(jac)).reshape(3, 3, -1).max(-1)
  assert np.all(np.diag(jac) > 0)  # each output depends on its own image
  assert np.all(jac[~np.eye(3, dtype=bool)] == 0)  # and on no other


def test_translation_moves_the_content_by_whole_pixels_with_zeros_filling_in():
  x = jnp.arange(1, 65, dtype=jnp.float32).reshape(1, 8, 8, 1)
  out = np.asarray(augment.AUGMENTATIONS["translation"](jax.random.key(0), x,
                                                        -1, 1))[0, ..., 0]
  image = np.asarray(x)[0, ..., 0]
  found = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
           if np.array_equal(out, _shifted(image, dy, dx))]
  assert len(found) == 1  # a shift of at most 1/8 of 8 pixels


def _shifted(image, dy, dx):
  out = np.zeros_like(image)
  h, w = image.shape
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[
      max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
  return out


def test_cutout_zeroes_one_square_of_half_the_size_at_most():
  x = jnp.ones((64, 8, 8, 1))
  out = np.asarray(augment.AUGMENTATIONS["cutout"](jax.random.key(0), x, -1, 1))
  zeros = (out == 0).reshape(64, -1).sum(1)
  assert zeros.max() == 16 and zeros.min() >= 4  # 4x4, clipped at borders
  assert set(np.unique(out)) <= {0.0, 1.0}


def test_color_keeps_grayscale_images_gray_and_stays_near_the_range():
  x = _images(b=64, c=1)
  out = augment.AUGMENTATIONS["color"](jax.random.key(0), x, -1, 1)
  assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out)))


def _config(policy="color,translation,cutout"):
  config = default.get_config()
  config.batch_size, config.n_critic = 4, 2
  config.model = presets.model_config("dcgan", width=4, z_dim=8)
  config.augment.policy = policy
  validation.validate(config)
  return config


def test_both_players_see_augmented_images_and_the_penalty_interpolates_them(
    monkeypatch):
  config = _config()
  gan = train_step.create_gan(config, (16, 16, 3))
  state = train_step.create_train_state(gan)
  batch = {"image": np.random.default_rng(0).integers(
      0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)}
  noise = train_step.step_noise(gan, state.step)
  seen = []
  original = train_step.critic_objective
  def spy(gan, params, stats, real, fake, eps, *labels):
    # Runs once per critic update, compiled: op-by-op it takes a minute.
    jax.debug.callback(lambda r, f: seen.append((np.asarray(r), np.asarray(f))),
                       real, fake, ordered=True)
    return original(gan, params, stats, real, fake, eps, *labels)
  monkeypatch.setattr(train_step, "critic_objective", spy)
  jax.block_until_ready(jax.jit(functools.partial(train_step.train_step, gan))(
      state, batch))
  jax.effects_barrier()
  assert len(seen) == config.n_critic
  reals = train_step.prepare_reals(gan, jnp.asarray(batch["image"]), noise.flips)
  for i, (real, fake) in enumerate(seen):
    real_key, fake_key = jax.random.split(noise.critic_augment[i])
    np.testing.assert_allclose(
        real, train_step.augment_images(gan, real_key, reals[i]), atol=1e-6)
    raw_fake = gan.generator.apply(
        state.generator.variables, noise.critic_z[i], train=True,
        mutable=["batch_stats"])[0]
    assert not np.allclose(fake, raw_fake, atol=1e-3)  # augmented
  # The generator's loss scores augmented fakes: off, it differs.
  losses = []
  for g in (gan, train_step.create_gan(_config(""), (16, 16, 3))):
    loss, _ = train_step.generator_objective(
        g, state.generator.params, state.generator.batch_stats, state.critic,
        noise.generator_z, None, noise.generator_augment)
    losses.append(float(loss))
  assert losses[0] != losses[1]


def test_an_unknown_augmentation_is_a_config_error():
  with pytest.raises(ConfigError, match="config.augment.policy='colour'"):
    _config("colour")
