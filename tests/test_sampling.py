"""Specification of the pure z-space helpers of wgan_jax.sampling.

Loading trained networks is covered on real runs by test_train.py
(load_generator) and test_generate.py (load_critic).
"""

import ml_collections
import numpy as np
import pytest

from wgan_jax import sampling


def _generator(z_dim: int) -> sampling.Generator:
  """A Generator stub: noise() only reads z_dim."""
  config = ml_collections.ConfigDict({"model": {"z_dim": z_dim}})
  return sampling.Generator(module=None, variables={}, config=config,
                            data_shape=(2,), step=0)


def test_noise_is_a_function_of_the_seed():
  generator = _generator(16)
  z = np.asarray(sampling.noise(generator, 4, seed=7))
  assert z.shape == (4, 16) and z.dtype == np.float32
  np.testing.assert_array_equal(z, sampling.noise(generator, 4, seed=7))
  assert not np.array_equal(z, sampling.noise(generator, 4, seed=8))


def test_truncated_noise_stays_within_the_threshold():
  generator = _generator(64)
  z = np.asarray(sampling.noise(generator, 256, seed=0, truncation=0.5))
  assert np.all(np.abs(z) <= 0.5)
  # Not collapsed onto a few values: it spreads over the interval.
  assert z.min() < -0.4 and z.max() > 0.4 and z.std() > 0.2
  with pytest.raises(ValueError, match="truncation must be > 0"):
    sampling.noise(generator, 1, truncation=0.0)


def test_latent_sweep_moves_only_the_two_components():
  z = np.random.default_rng(0).normal(size=6).astype(np.float32)
  offsets = np.linspace(-1, 1, 5)
  sweep = sampling.latent_sweep(z, (1, 4), offsets)
  assert sweep.shape == (5, 5, 6) and sweep.dtype == np.float32
  np.testing.assert_array_equal(sweep[2, 2], z)  # offset 0 in the middle
  for r in range(5):
    for c in range(5):
      np.testing.assert_allclose(sweep[r, c, 1], z[1] + offsets[r], rtol=1e-6)
      np.testing.assert_allclose(sweep[r, c, 4], z[4] + offsets[c], rtol=1e-6)
      np.testing.assert_array_equal(sweep[r, c, [0, 2, 3, 5]], z[[0, 2, 3, 5]])


@pytest.mark.parametrize("dims", [(0, 6), (-1, 2), (3, 3), (1,)])
def test_latent_sweep_rejects_bad_dims(dims):
  with pytest.raises(ValueError, match=r"two different components in \[0, 6\)"):
    sampling.latent_sweep(np.zeros(6), dims, [0.0])


@pytest.mark.parametrize("method", sampling.INTERPOLATION_METHODS)
def test_interpolation_includes_both_endpoints_exactly(method):
  rng = np.random.default_rng(1)
  z_a, z_b = rng.normal(size=(2, 3, 32)).astype(np.float32)
  path = sampling.interpolate(z_a, z_b, 7, method)
  assert path.shape == (3, 7, 32) and path.dtype == np.float32
  np.testing.assert_array_equal(path[:, 0], z_a)
  np.testing.assert_array_equal(path[:, -1], z_b)


def test_linear_interpolation_is_evenly_spaced_on_the_segment():
  z_a, z_b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
  np.testing.assert_allclose(sampling.interpolate(z_a, z_b, 5, "linear"),
                             [[0, 2], [1, 1], [2, 0], [3, -1], [4, -2]])


def test_spherical_interpolation_keeps_the_norm_and_even_angles():
  rng = np.random.default_rng(2)
  z_a, z_b = rng.normal(size=(2, 128))
  z_b *= np.linalg.norm(z_a) / np.linalg.norm(z_b)  # equal norms
  path = sampling.interpolate(z_a, z_b, 9, "spherical").astype(np.float64)
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1),
                             np.linalg.norm(z_a), rtol=1e-5)
  unit = path / np.linalg.norm(path, axis=-1, keepdims=True)
  steps = np.arccos(np.clip(np.sum(unit[1:] * unit[:-1], axis=-1), -1, 1))
  total = np.arccos(np.dot(unit[0], unit[-1]))
  np.testing.assert_allclose(steps, total / 8, rtol=1e-4)
  # The linear path cuts the chord: its middle is shorter.
  middle = sampling.interpolate(z_a, z_b, 9, "linear")[4]
  assert np.linalg.norm(middle) < 0.9 * np.linalg.norm(z_a)


def test_spherical_interpolation_of_parallel_vectors_is_linear():
  z_a = np.array([1.0, 2.0, 3.0], np.float32)
  for z_b in (z_a, 3 * z_a):
    np.testing.assert_allclose(sampling.interpolate(z_a, z_b, 4, "spherical"),
                               sampling.interpolate(z_a, z_b, 4, "linear"),
                               rtol=1e-6)


def test_interpolation_rejects_bad_arguments():
  with pytest.raises(ValueError, match="Unknown interpolation method"):
    sampling.interpolate(np.ones(2), np.ones(2), 3, "cubic")
  with pytest.raises(ValueError, match="num >= 2"):
    sampling.interpolate(np.ones(2), np.ones(2), 1)


def test_checkpoints_saved_before_a_model_field_existed_still_load(tmp_path):
  # A run's saved config lacks fields added later (e.g. model.dtype): they
  # take their preset defaults.
  from wgan_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from wgan_jax import presets  # pylint: disable=g-import-not-at-top
  model = presets.model_config("fmnist28").to_dict()
  del model["dtype"]
  config = checkpointing.config_from_meta({"config": {"seed": 0, "model": model}})
  assert config.model.dtype == "float32"
  assert config.model.critic_features == (32, 64, 128, 256)
