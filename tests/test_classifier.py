"""Specification of wgan_jax.classifier: the ruler of class accuracy."""

import numpy as np
import pytest

from configs import default
from wgan_jax import classifier

NUM_CLASSES = 3


def _data_config(**fields):
  data = default.base_config().data
  data.update(fields)
  return data


def _images(n, seed=0):
  """Class k: a bright 6x6 square in corner k of a noisy 16x16 image."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
  images = rng.integers(0, 60, (n, 16, 16, 1)).astype(np.uint8)
  corners = [(0, 0), (0, 10), (10, 0)]
  for i, k in enumerate(labels):
    r, c = corners[k]
    images[i, r:r + 6, c:c + 6] = 230
  return images, labels


@pytest.fixture
def data(tmp_path, monkeypatch):
  monkeypatch.setattr(classifier, "EPOCHS", 12)
  images, labels = _images(400)
  np.savez(tmp_path / "set.npz", x_train=images, y_train=labels)
  return _data_config(source="npz", path=str(tmp_path / "set.npz"))


def test_it_learns_the_classes_and_its_test_accuracy_is_class_accuracy_on_real_images(
    data, tmp_path):
  model = classifier.load_or_train(data, NUM_CLASSES, "", str(tmp_path / "cache"))
  assert model.test_accuracy >= 0.9
  assert model.num_test == 40  # the held-out 10%
  # The metric on the real held-out images is the classifier's test accuracy.
  images, labels = _images(400)
  held = classifier._holdout(400)  # pylint: disable=protected-access
  assert classifier.class_accuracy(model, images[held], labels[held]) == (
      model.test_accuracy)
  # Wrong labels are measured as wrong.
  assert classifier.class_accuracy(
      model, images[held], (labels[held] + 1) % NUM_CLASSES) <= 0.1


def test_it_is_trained_once_then_read_from_the_cache(data, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  first = classifier.load_or_train(data, NUM_CLASSES, "", cache)
  def no_training(*args, **kwargs):
    raise AssertionError("trained again despite the cache")
  monkeypatch.setattr(classifier, "train", no_training)
  second = classifier.load_or_train(data, NUM_CLASSES, "", cache)
  assert second.test_accuracy == first.test_accuracy
  images, _ = _images(50, seed=1)
  np.testing.assert_array_equal(second.predict(images), first.predict(images))


def test_a_test_split_that_is_the_training_data_is_refused(data):
  with pytest.raises(classifier.ClassifierError,
                     match="classifier_test_split='test' gives the training"):
    classifier.load_or_train(data, NUM_CLASSES, "test", None)


def test_unlabelled_or_miscounted_data_is_refused(tmp_path, data):
  with pytest.raises(classifier.ClassifierError, match="needs 4 labelled"):
    classifier.load_or_train(data, 4, "", None)
  np.savez(tmp_path / "plain.npz", x_train=_images(10)[0])
  plain = _data_config(source="npz", path=str(tmp_path / "plain.npz"),
                                   npz_labels_key="")
  with pytest.raises(classifier.ClassifierError, match="has no"):
    classifier.load_or_train(plain, NUM_CLASSES, "", None)


def test_the_command_refuses_an_unconditional_config_in_one_line(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.classifier",
       "--config=configs/fashion_mnist_wgangp.py", f"--workdir={tmp_path}"],
      capture_output=True, text=True, timeout=120,
      cwd=str(__import__("conftest").REPO))
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("wgan_jax.classifier: error: config.model."
                              "num_classes=0")
  assert "Traceback" not in proc.stderr
