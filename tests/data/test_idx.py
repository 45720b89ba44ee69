"""wgan_jax.data.idx: MNIST / Fashion-MNIST IDX files, Debian folder, TFDS."""

import gzip
import os
import re
import struct

from data_helpers import data_config
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import require_data
from wgan_jax import data
from wgan_jax.data import idx


def write_idx(directory, split, images, labels, gz=True):
  """The four original files' layout: big-endian magic, dims, then bytes."""
  stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
           "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
  os.makedirs(directory, exist_ok=True)
  images_raw = struct.pack(">4I", 2051, *images.shape) + images.tobytes()
  labels_raw = struct.pack(">2I", 2049, len(labels)) + labels.tobytes()
  paths = []
  for stem, raw in zip(stems[split], (images_raw, labels_raw)):
    path = os.path.join(directory, stem + (".gz" if gz else ""))
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
      f.write(raw)
    paths.append(path)
  return paths


def fake_mnist(n=7, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
          rng.integers(0, 10, n).astype(np.uint8))


@pytest.mark.parametrize("split,gz", [("train", True), ("test", False)])
def test_idx_files_load_exactly_with_labels_and_fashion_class_names(
    tmp_path, split, gz):
  images, labels = fake_mnist()
  write_idx(tmp_path, split, images, labels, gz=gz)

  ds = data.load_dataset(data_config(source="fashion_mnist",
                                     path=str(tmp_path), split=split))

  np.testing.assert_array_equal(ds.examples, images[..., None])
  np.testing.assert_array_equal(ds.labels, labels)
  assert ds.labels.dtype == np.int32
  # Zalando's published label order.
  assert len(ds.class_names) == 10
  assert ds.class_names[0] == "T-shirt/top"
  assert ds.class_names[9] == "Ankle boot"


def test_mnist_images_convert_to_rgb_and_resize(tmp_path):
  images, labels = fake_mnist()
  images[0] = 200  # A flat image stays flat when resized.
  write_idx(tmp_path, "train", images, labels)

  ds = data.load_dataset(data_config(source="mnist", path=str(tmp_path),
                                     channels=3, image_size=32))

  assert ds.examples.shape == (7, 32, 32, 3)
  assert np.all(np.abs(ds.examples[0].astype(int) - 200) <= 1)
  np.testing.assert_array_equal(ds.examples[..., 0], ds.examples[..., 2])
  assert ds.class_names == tuple("0123456789")


@pytest.mark.parametrize(
    "damage", ["swapped", "truncated", "trailing_bytes", "count_mismatch"])
def test_broken_idx_files_are_an_error_naming_the_file(tmp_path, damage):
  images, labels = fake_mnist()
  images_path, labels_path = write_idx(tmp_path, "train", images, labels,
                                       gz=False)
  if damage == "swapped":
    culprit = images_path
    os.replace(labels_path, images_path + ".tmp")
    os.replace(images_path, labels_path)
    os.replace(images_path + ".tmp", images_path)
  elif damage == "truncated":
    culprit = images_path
    with open(images_path, "r+b") as f:
      f.truncate(1000)
  elif damage == "trailing_bytes":
    culprit = images_path
    with open(images_path, "ab") as f:
      f.write(b"\0" * 28)
  else:
    culprit = labels_path
    write_idx(tmp_path, "train", images, labels[:-1], gz=False)

  with pytest.raises(data.DataError, match=re.escape(culprit)):
    data.load_dataset(data_config(source="mnist", path=str(tmp_path)))


def test_folder_without_idx_files_is_an_error_naming_the_expected_files(
    tmp_path):
  with pytest.raises(data.DataError, match="train-images-idx3-ubyte"):
    data.load_dataset(data_config(source="fashion_mnist", path=str(tmp_path)))


def test_empty_path_uses_the_debian_folder_before_tfds(tmp_path, monkeypatch):
  images, labels = fake_mnist()
  write_idx(tmp_path, "train", images, labels)
  monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", str(tmp_path))

  def no_tfds(*args, **kwargs):
    raise AssertionError("tfds must not be used when the IDX files exist")

  monkeypatch.setattr(tfds, "data_source", no_tfds)

  ds = data.load_dataset(data_config(source="fashion_mnist", path=""))

  np.testing.assert_array_equal(ds.examples[..., 0], images)


def test_empty_path_falls_back_to_tfds_data_source(tmp_path, monkeypatch):
  monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", str(tmp_path / "none"))

  with tfds.testing.mock_data(num_examples=5,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = data.load_dataset(data_config(source="fashion_mnist", path="",
                                       split="test"))

  assert ds.examples.shape == (5, 28, 28, 1) and ds.examples.dtype == np.uint8
  assert ds.labels.dtype == np.int32 and np.all((ds.labels >= 0) &
                                                (ds.labels < 10))


def test_fashion_mnist_missing_everywhere_is_one_error_naming_the_places(
    tmp_path, monkeypatch):
  missing = str(tmp_path / "no-such-dir")
  monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion_mnist", missing)

  def unavailable(*args, **kwargs):
    raise FileNotFoundError("not prepared")

  monkeypatch.setattr(tfds, "data_source", unavailable)

  with pytest.raises(data.DataError) as error:
    data.load_dataset(data_config(source="fashion_mnist", path=""))
  assert missing in str(error.value) and "tfds" in str(error.value)
  assert "config.data.path" in str(error.value)


def test_unknown_mnist_split_is_an_error(tmp_path):
  with pytest.raises(data.DataError, match="'validation'"):
    data.load_dataset(data_config(source="mnist", path=str(tmp_path),
                                  split="validation"))


def test_real_fashion_mnist_has_the_published_split_sizes_and_balance():
  path = str(require_data("fashion-mnist"))

  train = data.load_dataset(data_config(source="fashion_mnist", path=path))
  test = data.load_dataset(data_config(source="fashion_mnist", path=path,
                                       split="test"))

  assert train.examples.shape == (60000, 28, 28, 1)
  assert test.examples.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
