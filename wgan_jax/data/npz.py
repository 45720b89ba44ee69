"""source='npz': arrays `npz_images_key` / `npz_labels_key` of an .npz file.

Images NHWC, NCHW (transposed) or NHW (grayscale), integer pixels 0..255;
labels [N] or Keras-style [N, 1] non-negative integers, or none ('').
"""

import os
import zipfile

from absl import logging
import numpy as np

from wgan_jax.data import decode
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import listing
from wgan_jax.data.dataset import read_only
from wgan_jax.data.dataset import subset
from wgan_jax.errors import DataError


def load(spec: Spec, cache_dir: str | None, seed: int) -> Dataset:
  """Images (and labels) from named arrays of an .npz file."""
  del cache_dir  # The arrays are already decoded.
  path = os.path.abspath(os.path.expanduser(spec.path)) if spec.path else ""
  if not path or not os.path.isfile(path):
    raise DataError(f".npz file {path or '(config.data.path is empty)'} does "
                    "not exist; set config.data.path to it")
  if spec.split != "train":
    logging.warning("source=npz ignores split=%r: the arrays are chosen by "
                    "npz_images_key / npz_labels_key", spec.split)
  try:
    with np.load(path, allow_pickle=False) as f:
      keys = list(f.keys())
      if spec.npz_images_key not in keys:
        raise DataError(f"{path} has no array {spec.npz_images_key!r} (it has "
                        f"{listing(keys)}); set config.data.npz_images_key")
      if spec.npz_labels_key and spec.npz_labels_key not in keys:
        raise DataError(f"{path} has no array {spec.npz_labels_key!r} (it has "
                        f"{listing(keys)}); set config.data.npz_labels_key, "
                        "or to '' for unlabeled images")
      images = f[spec.npz_images_key]
      labels = f[spec.npz_labels_key] if spec.npz_labels_key else None
  except DataError:
    raise
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"cannot read {path} as .npz ({e}); re-create it with "
                    "numpy.savez") from None
  what = f"{path}[{spec.npz_images_key!r}]"
  images = _images(images, what)
  labels = _labels(labels, len(images), path, spec.npz_labels_key)
  keep = subset(len(images), spec.max_examples, seed)
  images = decode.process_array_images(images[keep], spec, what)
  class_names = ()
  if labels is not None:
    labels = labels[keep]
    # An .npz carries no class names; number them so num_classes is right.
    class_names = tuple(str(i) for i in range(int(labels.max(initial=-1)) + 1))
  return Dataset(read_only(images), read_only(labels), class_names,
                 spec.source)


def _images(images: np.ndarray, what: str) -> np.ndarray:
  """NHWC / NCHW / NHW integer array with values 0..255 -> uint8 NHWC."""
  if not np.issubdtype(images.dtype, np.integer):
    raise DataError(f"{what} is {images.dtype}; store uint8 pixels 0..255 "
                    "(e.g. np.round(x * 255).astype(np.uint8))")
  if images.dtype != np.uint8:
    if images.size and (images.min() < 0 or images.max() > 255):
      raise DataError(f"{what} ({images.dtype}) has values outside 0..255; "
                      "store uint8 pixels")
    images = images.astype(np.uint8)
  if images.ndim == 3:
    return images[..., None]
  if images.ndim == 4 and images.shape[-1] in (1, 3):
    return images
  if images.ndim == 4 and images.shape[1] in (1, 3):
    logging.info("%s has shape %s: reading it as NCHW and transposing to NHWC",
                 what, list(images.shape))
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
  raise DataError(f"{what} has shape {list(images.shape)}, not [N, H, W] "
                  "or [N, H, W, C] / [N, C, H, W] with 1 or 3 channels; "
                  "convert it to grayscale or RGB (e.g. drop alpha with "
                  "x[..., :3])")


def _labels(labels: np.ndarray | None, n: int, path: str,
            key: str) -> np.ndarray | None:
  """Labels [N] or [N, 1] -> int32 [N]; None stays None (unlabeled)."""
  if labels is None:
    return None
  if labels.ndim == 2 and labels.shape[1] == 1:  # Keras-style [N, 1].
    labels = labels[:, 0]
  if (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer) or
      (n and labels.min() < 0)):
    raise DataError(f"{path}[{key!r}] must hold {n} non-negative integer "
                    f"labels, got {labels.dtype} {list(labels.shape)}; fix "
                    "config.data.npz_labels_key ('' for unlabeled)")
  return labels.astype(np.int32)
