"""wgan_jax.data.toy: the 2-D mixtures of the WGAN-GP paper (gan_toy.py)."""

from data_helpers import data_config
import numpy as np
import pytest

from wgan_jax import data


def test_toy_modes_have_the_paper_geometry():
  eight = data.toy_modes("toy:8gaussians")
  grid = data.toy_modes("25gaussians")

  assert eight.shape == (8, 2) and eight.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(eight, axis=1), 2 / 1.414,
                             rtol=1e-6)
  angles = np.sort(np.degrees(np.arctan2(eight[:, 1], eight[:, 0])) % 360)
  np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=1e-4)
  expected = {(2 * x / 2.828, 2 * y / 2.828)
              for x in range(-2, 3) for y in range(-2, 3)}
  assert grid.shape == (25, 2)
  assert all(np.min(np.linalg.norm(grid - np.array(e), axis=1)) < 1e-6
             for e in expected)


@pytest.mark.parametrize("name,std,divisor", [
    ("toy:8gaussians", 0.02, 1.414), ("toy:25gaussians", 0.05, 2.828)])
def test_toy_points_sit_at_the_modes_with_the_paper_spread(name, std, divisor):
  n = 25_000
  ds = data.load_dataset(data_config(source=name, toy_num_examples=n))
  points, modes = ds.examples, data.toy_modes(name)

  assert points.shape == (n, 2) and points.dtype == np.float32
  assert ds.labels is None and not ds.is_image
  distances = np.linalg.norm(points[:, None] - modes[None], axis=-1)
  nearest = distances.argmin(axis=1)
  residual = points - modes[nearest]
  np.testing.assert_allclose(residual.std(axis=0), std / divisor, rtol=0.05)
  assert np.abs(residual).max() < 6 * std / divisor
  counts = np.bincount(nearest, minlength=len(modes))
  if len(modes) == 25:
    np.testing.assert_array_equal(counts, n // 25)  # Balanced, as the paper.
  else:  # Uniform random choice: each count within 5 binomial sigmas.
    sigma = np.sqrt(n * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts - n / 8) < 5 * sigma)


def test_toy_points_are_a_function_of_the_seed():
  config = data_config(source="toy:8gaussians", toy_num_examples=100)
  a = data.load_dataset(config, seed=3).examples
  np.testing.assert_array_equal(data.load_dataset(config, seed=3).examples, a)
  assert not np.array_equal(data.load_dataset(config, seed=4).examples, a)
