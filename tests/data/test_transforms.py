"""wgan_jax.data.transforms: value ranges and flips, on host and device."""

import ast
import pathlib

from data_helpers import random_images
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wgan_jax.data import transforms

ALL_UINT8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)


def test_transforms_imports_only_numpy_and_jax():
  tree = ast.parse(pathlib.Path(transforms.__file__).read_text())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      imported.add(node.module)

  assert {name.split(".")[0] for name in imported} <= {"jax", "numpy",
                                                        "typing"}


def test_the_train_step_loads_no_host_loader():
  # In a fresh interpreter: importing the compiled step (and, through
  # validation, the data tables) must not import the decoders or Pillow.
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import sys, wgan_jax.train_step; "
          "print(sorted(m for m in sys.modules if m == 'PIL' or "
          "m.startswith('wgan_jax.data.')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, timeout=300,
                       cwd=pathlib.Path(__file__).resolve().parents[2]).stdout
  assert out.strip() == "['wgan_jax.data.transforms']"


@pytest.mark.parametrize("activation,low,high", [
    ("tanh", -1.0, 1.0), ("sigmoid", 0.0, 1.0)])
def test_to_model_range_maps_0_and_255_onto_the_activation_range_linearly(
    activation, low, high):
  y = transforms.to_model_range(ALL_UINT8, activation)

  assert isinstance(y, np.ndarray) and y.dtype == np.float32
  expected = low + (high - low) * ALL_UINT8.astype(np.float64) / 255
  np.testing.assert_allclose(y, expected, atol=1e-6)
  assert y.ravel()[0] == low and y.ravel()[-1] == high


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_to_uint8_inverts_to_model_range_for_every_value_on_numpy_and_jax(
    activation):
  on_host = transforms.to_uint8(
      transforms.to_model_range(ALL_UINT8, activation), activation)
  on_device = jax.jit(lambda x: transforms.to_uint8(
      transforms.to_model_range(x, activation), activation))(
          jnp.asarray(ALL_UINT8))

  assert isinstance(on_host, np.ndarray) and on_host.dtype == np.uint8
  assert isinstance(on_device, jax.Array) and on_device.dtype == jnp.uint8
  np.testing.assert_array_equal(on_host, ALL_UINT8)
  np.testing.assert_array_equal(np.asarray(on_device), ALL_UINT8)


@pytest.mark.parametrize("activation,to_range", [
    ("tanh", lambda v: v / 127.5 - 1), ("sigmoid", lambda v: v / 255)])
def test_to_uint8_rounds_to_nearest_and_clips(activation, to_range):
  levels = np.array([10.4, 10.6, -3.0, 300.0, 254.7])
  y = to_range(levels).astype(np.float32)

  np.testing.assert_array_equal(transforms.to_uint8(y, activation),
                                [10, 11, 0, 255, 255])
  np.testing.assert_array_equal(transforms.to_uint8(jnp.asarray(y), activation),
                                [10, 11, 0, 255, 255])


def test_toy_points_pass_through_to_model_range_as_float32():
  points = np.array([[0.25, -3.5], [1e3, 0.0]], np.float64)

  for x in (points, jnp.asarray(points, jnp.float32)):
    y = transforms.to_model_range(x, "tanh")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(y), points.astype(np.float32))


def test_bad_activation_or_dtype_is_rejected():
  with pytest.raises(ValueError, match="relu"):
    transforms.to_model_range(ALL_UINT8, "relu")
  with pytest.raises(ValueError):
    transforms.to_model_range(ALL_UINT8.astype(np.int32), "tanh")
  with pytest.raises(ValueError, match="relu"):
    transforms.to_uint8(np.zeros(3, np.float32), "relu")


def test_flip_horizontally_mirrors_exactly_the_marked_images():
  images = jnp.asarray(random_images(6, 5, 7)).reshape(2, 3, 5, 7, 3)
  flips = jnp.array([[True, False, True], [False, False, True]])

  out = jax.jit(transforms.flip_horizontally)(images, flips)

  for i in range(2):
    for j in range(3):
      expected = images[i, j, :, ::-1] if flips[i, j] else images[i, j]
      np.testing.assert_array_equal(out[i, j], expected)
