"""wgan_jax.data.dataset and sources: Dataset, config reading, dispatch."""

import dataclasses

from data_helpers import data_config
from data_helpers import load_npz
from data_helpers import random_images
import numpy as np
import pytest

from configs import default
from wgan_jax import data
from wgan_jax import errors
from wgan_jax import validation
from wgan_jax.data import dataset
from wgan_jax.data import sources


@pytest.mark.parametrize("overrides,field", [
    (dict(source="cifar"), "source"),
    (dict(source="tfds:"), "source"),
    (dict(resize="crop"), "resize"),
    (dict(channels=2), "channels"),
    (dict(image_size=-1), "image_size"),
    (dict(max_examples=-5), "max_examples"),
    (dict(source="toy:8gaussians", random_flip=True), "random_flip"),
])
def test_bad_config_values_are_an_error_naming_the_field(overrides, field):
  with pytest.raises(errors.ConfigError, match=f"config.data.{field}"):
    validation.check_data(data_config(**overrides))


def test_load_dataset_checks_the_config_like_validation():
  with pytest.raises(errors.ConfigError, match="config.data.source"):
    data.load_dataset(data_config(source="cifar"))
  with pytest.raises(errors.ConfigError, match="config.data.toy_num_examples"):
    data.load_dataset(data_config(source="toy:8gaussians", toy_num_examples=0))


def test_the_default_config_data_has_every_field_the_loaders_read():
  spec = dataset.Spec.from_config(default.base_config().data)

  assert spec.source == "fashion_mnist" and spec.split == "train"
  # Fields with a default (shard) are load_dataset's arguments, not config.
  assert {f.name for f in dataclasses.fields(dataset.Spec)
          if f.default is dataclasses.MISSING} <= set(default.base_config().data)
  assert spec.shard == (0, 1)


def test_every_listed_source_has_a_loader():
  assert set(sources._LOADERS) == set(data.SOURCES) - {"tfds:NAME"}
  assert set(data.TOY_SOURCES) <= set(data.SOURCES)
  assert {"folder", "fashion_mnist", "mnist", "npz"} <= set(data.SOURCES)


@pytest.mark.parametrize("source,known", [
    ("folder", True), ("toy:8gaussians", True), ("tfds:cifar10", True),
    ("tfds:", False), ("imagenet", False), ("toy:9gaussians", False),
    (3, False)])
def test_known_source_is_a_loader_key_or_a_tfds_name(source, known):
  assert data.known_source(source) is known


def test_data_error_is_the_user_error_of_wgan_jax_errors():
  assert data.DataError is errors.DataError
  assert issubclass(data.DataError, errors.UserError)


def test_loaded_arrays_are_read_only(tmp_path):
  x = random_images(2, 4, 4)
  ds = load_npz(tmp_path, {"x_train": x, "y_train": np.array([0, 1])})

  with pytest.raises(ValueError):
    ds.examples[0, 0, 0, 0] = 1
  with pytest.raises(ValueError):
    ds.labels[0] = 1


@pytest.mark.parametrize("examples,labels", [
    (np.zeros((2, 4, 4, 3), np.float32), None),  # Float images.
    (np.zeros((2, 4, 4, 4), np.uint8), None),  # RGBA.
    (np.zeros((2, 3), np.float32), None),  # 3-D points.
    (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3, np.int32)),  # Count.
    (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.int64)),  # Dtype.
    (np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1], np.int32)),  # Names.
])
def test_dataset_rejects_inconsistent_arrays(examples, labels):
  with pytest.raises(ValueError):
    data.Dataset(examples, labels, ("only",) if labels is not None else ())
