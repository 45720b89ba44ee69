"""wgan_jax.data.npz: named arrays of an .npz file."""

from data_helpers import load_npz
from data_helpers import random_images
import numpy as np
import pytest

from wgan_jax import data


def test_npz_nhwc_uint8_loads_exactly_with_numbered_classes(tmp_path):
  x = random_images(5, 4, 4)
  y = np.array([0, 3, 1, 3, 2], np.uint8)

  ds = load_npz(tmp_path, {"x_train": x, "y_train": y})

  np.testing.assert_array_equal(ds.examples, x)
  np.testing.assert_array_equal(ds.labels, y)
  assert ds.num_classes == 4  # Classes 0..max label.


def test_npz_nchw_and_grayscale_nhw_arrays_become_nhwc(tmp_path):
  x = random_images(5, 4, 6)
  gray = random_images(5, 4, 6, channels=1)

  nchw = load_npz(tmp_path, {"x_train": x.transpose(0, 3, 1, 2)},
                  npz_labels_key="")
  nhw = load_npz(tmp_path, {"x_train": gray[..., 0]}, npz_labels_key="")

  np.testing.assert_array_equal(nchw.examples, x)
  np.testing.assert_array_equal(nhw.examples, gray)
  assert nchw.labels is None and nchw.class_names == ()


def test_npz_split_keys_select_the_test_arrays(tmp_path):
  x_test, y_test = random_images(3, seed=1), np.array([1, 0, 1])
  arrays = {"x_train": random_images(4), "y_train": np.zeros(4, np.int64),
            "x_test": x_test, "y_test": y_test}

  ds = load_npz(tmp_path, arrays, npz_images_key="x_test",
                npz_labels_key="y_test")

  np.testing.assert_array_equal(ds.examples, x_test)
  np.testing.assert_array_equal(ds.labels, y_test)


@pytest.mark.parametrize("arrays,overrides,message", [
    ({"images": random_images(2)}, {}, r"no array 'x_train'.*images"),
    ({"x_train": random_images(2)}, {}, r"no array 'y_train'"),
    ({"x_train": random_images(2, channels=4)}, dict(npz_labels_key=""),
     r"shape \[2, 6, 7, 4\].*1 or 3 channels"),
    ({"x_train": random_images(2, channels=2)}, dict(npz_labels_key=""),
     r"shape \[2, 6, 7, 2\].*1 or 3 channels"),
    ({"x_train": random_images(2) / 255.0}, dict(npz_labels_key=""),
     "float64"),
    ({"x_train": random_images(2), "y_train": np.zeros(3)}, {},
     "'y_train'.*2 non-negative integer labels"),
])
def test_unusable_npz_arrays_are_one_error_naming_the_fix(
    tmp_path, arrays, overrides, message):
  with pytest.raises(data.DataError, match=message) as error:
    load_npz(tmp_path, arrays, **overrides)
  assert str(tmp_path / "data.npz") in str(error.value)
