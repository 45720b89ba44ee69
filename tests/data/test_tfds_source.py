"""wgan_jax.data.tfds_source: tfds.data_source datasets (mocked)."""

from data_helpers import data_config
import numpy as np
import pytest
import tensorflow_datasets as tfds

from wgan_jax import data
from wgan_jax.data import decode


def test_tfds_source_gives_uint8_images_and_class_labels():
  with tfds.testing.mock_data(num_examples=6,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    ds = data.load_dataset(data_config(source="tfds:cifar10"))
    small = data.load_dataset(data_config(source="tfds:cifar10", image_size=16,
                                          channels=1, max_examples=4))

  assert ds.examples.shape == (6, 32, 32, 3) and ds.examples.dtype == np.uint8
  assert ds.num_classes == 10 and ds.labels.dtype == np.int32
  assert np.all((ds.labels >= 0) & (ds.labels < 10))
  assert small.examples.shape == (4, 16, 16, 1) and len(small.labels) == 4


def test_tfds_second_load_with_a_cache_converts_no_image(tmp_path,
                                                         monkeypatch):
  config = data_config(source="tfds:cifar10", image_size=8)
  with tfds.testing.mock_data(num_examples=5,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    first = data.load_dataset(config, cache_dir=str(tmp_path))

    def no_conversion(*args, **kwargs):
      raise AssertionError("cached images must not be converted again")

    monkeypatch.setattr(decode, "pil_to_array", no_conversion)
    second = data.load_dataset(config, cache_dir=str(tmp_path))

  np.testing.assert_array_equal(second.examples, first.examples)
  np.testing.assert_array_equal(second.labels, first.labels)
  assert second.class_names == first.class_names


def test_unknown_tfds_dataset_is_a_data_error_naming_it():
  with pytest.raises(data.DataError, match="no_such_dataset_xyz"):
    data.load_dataset(data_config(source="tfds:no_such_dataset_xyz"))


def test_a_tfds_shard_converts_only_its_records(monkeypatch):
  converted = []
  real = decode.pil_to_array

  def counting(*args, **kwargs):
    converted.append(1)
    return real(*args, **kwargs)

  config = data_config(source="tfds:cifar10", image_size=8)
  with tfds.testing.mock_data(num_examples=7,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    whole = data.load_dataset(config)
    monkeypatch.setattr(decode, "pil_to_array", counting)
    shard = data.load_dataset(config, shard=(1, 3))
  assert len(converted) == 2  # records 1 and 4 of 7
  np.testing.assert_array_equal(shard.examples, whole.examples[1::3])
  np.testing.assert_array_equal(shard.labels, whole.labels[1::3])
