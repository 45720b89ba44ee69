"""Helpers shared by the tests of wgan_jax.data: configs, images, folders.

tests/data has no __init__.py, so pytest puts this folder on sys.path and
the test modules import this one as `data_helpers` (and tests/conftest.py as
`conftest`).
"""

import os
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import default
from wgan_jax import data
from wgan_jax.data import decode


def data_config(**overrides) -> ml_collections.ConfigDict:
  """The complete default `config.data` (configs/default.py), then `overrides`.

  The dict is locked first, so a misspelt override is an error.
  """
  config = default.base_config().data
  config.lock()
  config.update(overrides)
  return config


def random_images(n, height=6, width=7, channels=3, seed=0) -> np.ndarray:
  """uint8 [n, height, width, channels] noise: every image distinct."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, height, width, channels), dtype=np.uint8)


def save_png(path, image: np.ndarray):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)


def make_class_folder(root, counts: dict[str, int], seed=0):
  """Class subfolders of random PNGs; returns {class: uint8 [n, 6, 7, 3]}."""
  images = {}
  for k, (name, n) in enumerate(counts.items()):
    images[name] = random_images(n, seed=seed + k)
    for i, image in enumerate(images[name]):
      save_png(os.path.join(root, name, f"{i:03d}.png"), image)
  return images


def zip_folder(folder, zip_path, extra: dict[str, bytes] | None = None):
  with zipfile.ZipFile(zip_path, "w") as zf:
    for root, _, files in os.walk(folder):
      for f in files:
        full = os.path.join(root, f)
        zf.write(full, os.path.relpath(full, folder))
    for name, contents in (extra or {}).items():
      zf.writestr(name, contents)


def load_folder(path, **overrides) -> data.Dataset:
  return data.load_dataset(data_config(source="folder", path=str(path),
                                       **overrides))


def load_npz(tmp_path, arrays: dict[str, np.ndarray], **overrides):
  path = tmp_path / "data.npz"
  np.savez(path, **arrays)
  return data.load_dataset(data_config(source="npz", path=str(path),
                                       **overrides))


def images_index(images, image) -> int:
  (index,) = [i for i, x in enumerate(images) if np.array_equal(x, image)]
  return index


@pytest.fixture
def decode_calls(monkeypatch):
  """Counts calls of the image decoder (shared by all decode threads)."""
  calls = []
  real = decode.decode_image

  def counting(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)

  monkeypatch.setattr(decode, "decode_image", counting)
  return calls
