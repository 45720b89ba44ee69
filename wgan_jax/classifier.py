"""A classifier of real images: how often generated images show their class.

    python -m wgan_jax.classifier --config=configs/fashion_mnist_cwgangp.py --workdir=DIR

trains a small CNN on the training images of config.data (or loads it from
the data cache: config.data.cache_dir, else DIR/data_cache, where training
puts it) and prints its accuracy on held-out real images: the split
config.eval.classifier_test_split (Fashion-MNIST: 'test'), or with '' a
seeded 10% of the training images kept out of its training. The class
accuracy of a conditional generator (`class_accuracy`) is the fraction of
its images that this classifier assigns to the class they were generated
for; on real held-out images it is the classifier's test accuracy, the
ceiling a generator can be measured against.

Network: [Conv3x3-ReLU-MaxPool2] with 32, 64, 128, ... channels until the
map is at most 7x7, then Dense(256)-ReLU-Dense(K). Adam 1e-3, batch 128,
EPOCHS epochs, shuffles from a fixed seed: the same data give the same
classifier.
"""

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Mapping, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from wgan_jax import data as data_lib
from wgan_jax import errors
from wgan_jax import metrics
from wgan_jax import validation

EPOCHS = 4
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
HOLDOUT_FRACTION = 0.1  # of the training images, when there is no test split
SEED = 0  # of the initialization, the shuffles and the held-out subset
# Bump when the network or its training changes: older cached classifiers
# are then retrained.
_VERSION = 1
_CACHE_PREFIX = "classifier"
# config.data fields that decide the training images.
_DATA_FIELDS = ("source", "path", "split", "image_size", "channels", "resize",
                "max_examples", "npz_images_key", "npz_labels_key")


class ClassifierError(errors.UserError, ValueError):
  """The classifier cannot be trained or measured on these data."""


class CNN(nn.Module):
  """uint8 images [B, H, W, C] -> class logits [B, num_classes]."""
  num_classes: int

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x = images.astype(jnp.float32) / 127.5 - 1.0
    features = 32
    while x.shape[1] > 7:
      x = nn.relu(nn.Conv(features, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      features *= 2
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(256)(x))
    return nn.Dense(self.num_classes)(x)


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A trained classifier and how well it does on held-out real images."""
  module: CNN
  params: Any
  class_names: tuple[str, ...]
  test_accuracy: float  # in [0, 1]
  num_test: int  # held-out images it was measured on
  test_name: str  # what they are, e.g. 'fashion_mnist:test'

  def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Classes int32 [N] of uint8 images [N, H, W, C]."""
    out = [np.asarray(_predict(self.module, self.params,
                               jnp.asarray(images[i:i + batch_size])))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.int32)


@functools.partial(jax.jit, static_argnums=0)
def _predict(module: CNN, params: Any, images: jax.Array) -> jax.Array:
  return jnp.argmax(module.apply({"params": params}, images), -1).astype(
      jnp.int32)


def class_accuracy(classifier: Classifier, images: np.ndarray,
                   labels: np.ndarray) -> float:
  """Fraction of uint8 images [N, H, W, C] that the classifier puts in their class labels [N]."""
  labels = np.asarray(labels)
  if len(images) != len(labels) or not len(labels):
    raise ValueError(f"need as many labels as images (> 0), got "
                     f"{len(labels)} and {len(images)}")
  return float(np.mean(classifier.predict(images) == labels))


def train(images: np.ndarray, labels: np.ndarray, num_classes: int,
          epochs: int = EPOCHS, seed: int = SEED) -> tuple[CNN, Any]:
  """(module, params) of a CNN trained on uint8 images [N, H, W, C], labels [N]."""
  module = CNN(num_classes)
  params = module.init(jax.random.key(seed), jnp.asarray(images[:1]))["params"]
  tx = optax.adam(LEARNING_RATE)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = module.apply({"params": p}, x)
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
          logits, y))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  batch = min(BATCH_SIZE, len(images))
  for epoch in range(epochs):
    order = rng.permutation(len(images))
    losses = []
    for start in range(0, len(order) - batch + 1, batch):
      idx = np.sort(order[start:start + batch])
      params, opt_state, loss = step(params, opt_state,
                                     jnp.asarray(images[idx]),
                                     jnp.asarray(labels[idx]))
      losses.append(loss)
    logging.info("classifier epoch %d/%d: loss %.4f", epoch + 1, epochs,
                 float(np.mean(jax.device_get(losses))))
  return module, params


def _holdout(num: int) -> np.ndarray:
  """bool [num]: the seeded HOLDOUT_FRACTION of examples kept for testing."""
  rng = np.random.default_rng(SEED)
  held = np.zeros(num, bool)
  held[rng.choice(num, max(1, round(num * HOLDOUT_FRACTION)), replace=False)] = True
  return held


def _load(data: ml_collections.ConfigDict, cache_dir: str | None,
          split: str | None = None) -> data_lib.Dataset:
  data = ml_collections.ConfigDict(dict(data))
  if split is not None:
    data.split, data.max_examples = split, 0
  return data_lib.load_dataset(data, cache_dir=cache_dir, seed=SEED)


def load_or_train(data: ml_collections.ConfigDict, num_classes: int,
                  test_split: str, cache_dir: str | None) -> Classifier:
  """The classifier of `data`'s classes, from the cache or trained now (and cached).

  Args:
    data: a config.data (its training images and labels).
    num_classes: the run's config.model.num_classes (checked against the data).
    test_split: the split of held-out images, or '' to keep a seeded 10% of
      the training images out of training.
    cache_dir: where it is cached; None: not cached.

  Raises:
    ClassifierError: the data have no labels or another number of classes,
      or the test split holds the training images themselves (a source
      without splits: use test_split='').
  """
  t0 = time.perf_counter()
  train_set = _load(data, cache_dir)
  if train_set.labels is None or train_set.num_classes != num_classes:
    raise ClassifierError(
        f"the class-accuracy classifier needs {num_classes} labelled classes; "
        f"{data.source} has {train_set.num_classes or 'no'} "
        f"({', '.join(train_set.class_names[:10]) or 'unlabelled'})")
  images, labels = train_set.examples, train_set.labels
  digest = validation.dataset_digest(images, labels)
  if test_split:
    test_set = _load(data, cache_dir, test_split)
    if validation.dataset_digest(test_set.examples, test_set.labels) == digest:
      raise ClassifierError(
          f"config.eval.classifier_test_split={test_split!r} gives the "
          f"training images themselves ({data.source} has no such split): "
          "set config.eval.classifier_test_split='' to hold out 10% of them")
    test_images, test_labels = test_set.examples, test_set.labels
    test_name = f"{data.source}:{test_split}"
  else:
    held = _holdout(len(images))
    test_images, test_labels = images[held], labels[held]
    images, labels = images[~held], labels[~held]
    test_name = f"{data.source}:{data.split} (held-out {HOLDOUT_FRACTION:.0%})"
  key = {"version": _VERSION, "epochs": EPOCHS, "seed": SEED,
         "data": {k: data.get(k) for k in _DATA_FIELDS},
         "train_digest": digest, "test": test_name,
         "image_shape": list(images.shape[1:]), "num_classes": num_classes}
  module = CNN(num_classes)

  def fit() -> dict[str, np.ndarray]:
    _, params = train(images, labels, num_classes)
    flat = flax.traverse_util.flatten_dict(jax.device_get(params), sep="/")
    model = Classifier(module, params, train_set.class_names, 0.0, 0, "")
    accuracy = class_accuracy(model, test_images, test_labels)
    return {**{f"params/{k}": np.asarray(v) for k, v in flat.items()},
            "test_accuracy": np.float64(accuracy)}

  arrays = (metrics.cached_arrays(cache_dir, key, _CACHE_PREFIX, fit)
            if cache_dir else fit())
  params = flax.traverse_util.unflatten_dict(
      {k[len("params/"):]: v for k, v in arrays.items()
       if k.startswith("params/")}, sep="/")
  classifier = Classifier(module, params, train_set.class_names,
                          float(arrays["test_accuracy"]), len(test_images),
                          test_name)
  logging.info("Classifier: %.2f%% on %d %s images (%.1f s).",
               100 * classifier.test_accuracy, classifier.num_test, test_name,
               time.perf_counter() - t0)
  return classifier


def for_config(config: ml_collections.ConfigDict, workdir: str) -> Classifier:
  """The classifier of a run's config, cached where training caches its data."""
  cache_dir = config.data.cache_dir or os.path.join(workdir, "data_cache")
  return load_or_train(config.data, config.model.num_classes,
                       config.eval.classifier_test_split, cache_dir)


def summary(classifier: Classifier) -> Mapping[str, Any]:
  """The JSON-able facts of a classifier, for logs and the command's output."""
  return {"test_accuracy": classifier.test_accuracy,
          "num_test": classifier.num_test, "test_set": classifier.test_name,
          "classes": list(classifier.class_names)}


FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  with errors.exit_on_user_error("wgan_jax.classifier"):
    config = FLAGS.config
    validation.validate(config)
    if not config.model.num_classes:
      raise ClassifierError(
          "config.model.num_classes=0: the class-accuracy classifier is for "
          "class-conditional configs; set config.model.num_classes")
    classifier = for_config(config, FLAGS.workdir)
  json.dump(summary(classifier), sys.stdout)
  print()


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "The run's --workdir (the cache is "
                      "config.data.cache_dir, else WORKDIR/data_cache).")
  config_flags.DEFINE_config_file("config", None, "Training config file.",
                                  lock_config=True)
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
