"""source='toy:8gaussians' / 'toy:25gaussians': WGAN-GP's 2-D mixtures.

As in gan_toy.py of Gulrajani et al. 2017, drawn from `seed`.
"""

import numpy as np

from wgan_jax.data.dataset import STREAM_TOY
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import listing
from wgan_jax.data.dataset import read_only
from wgan_jax.data.dataset import rng
from wgan_jax.data.dataset import subset
from wgan_jax.errors import DataError

TOY_SOURCES = ("toy:8gaussians", "toy:25gaussians")


def _toy_name(name: str) -> str:
  name = name[len("toy:"):] if name.startswith("toy:") else name
  if f"toy:{name}" not in TOY_SOURCES:
    raise DataError(f"unknown toy dataset {name!r}; use one of "
                    f"{listing(TOY_SOURCES)}")
  return name


def _mixture(name: str) -> tuple[np.ndarray, float, float]:
  """(float64 centres [M, 2] before scaling, noise std, divisor)."""
  if name == "8gaussians":
    r = 1.0 / np.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
            (-r, -r)]
    return 2.0 * np.array(unit, np.float64), 0.02, 1.414
  grid = [(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]
  return np.array(grid, np.float64), 0.05, 2.828


def toy_modes(name: str) -> np.ndarray:
  """Mode centres of a toy set ('toy:8gaussians' or '8gaussians', ...).

  Returns:
    float32 [M, 2]: M = 8 or 25, in data units (after the paper's division
    by 1.414 resp. 2.828).
  """
  centres, _, divisor = _mixture(_toy_name(name))
  return (centres / divisor).astype(np.float32)


def toy_points(name: str, num_examples: int, seed: int) -> np.ndarray:
  """Samples of a toy mixture as in gan_toy.py, deterministic in `seed`.

  8gaussians: uniform random mode, std 0.02, then / 1.414. 25gaussians:
  num_examples / 25 points per mode (balanced, shuffled), std 0.05, / 2.828.

  Returns:
    float32 [num_examples, 2].
  """
  name = _toy_name(name)
  centres, std, divisor = _mixture(name)
  generator = rng(seed, STREAM_TOY)
  if name == "8gaussians":
    modes = generator.integers(0, len(centres), num_examples)
  else:
    modes = generator.permutation(np.arange(num_examples) % len(centres))
  points = centres[modes] + std * generator.standard_normal((num_examples, 2))
  return (points / divisor).astype(np.float32)


def load(spec: Spec, cache_dir: str | None, seed: int) -> Dataset:
  """spec.toy_num_examples points (then the max_examples subset)."""
  del cache_dir  # Drawing the points is faster than reading them.
  points = toy_points(spec.source, spec.toy_num_examples, seed)
  points = points[subset(len(points), spec.max_examples, seed)]
  return Dataset(read_only(points), None, (), spec.source)
