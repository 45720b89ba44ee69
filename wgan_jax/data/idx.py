"""source='fashion_mnist' / 'mnist': the original IDX files, else TFDS.

The IDX files (.gz or raw) come from `data.path`; with an empty path, from
SYSTEM_DIRS (the Debian packages' /usr/share/datasets/...), then from
`tfds.data_source` (no TensorFlow).
"""

import gzip
import math
import os
import struct
import zlib

from absl import logging
import numpy as np

from wgan_jax.data import decode
from wgan_jax.data import tfds_source
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import read_only
from wgan_jax.data.dataset import subset
from wgan_jax.errors import DataError

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(i) for i in range(10))

# Where the Debian packages dataset-fashion-mnist / dataset-mnist install the
# IDX files. Module-level so tests can point it elsewhere.
SYSTEM_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def _find_idx(directory: str, stem: str) -> str | None:
  """Path of an IDX file, .gz or raw, '-idx' or '.idx' (Kaggle) naming."""
  for name in (stem, stem.replace("-idx", ".idx")):
    for suffix in (".gz", ""):
      candidate = os.path.join(directory, name + suffix)
      if os.path.isfile(candidate):
        return candidate
  return None


def _read_idx(path: str, magic: int) -> np.ndarray:
  """Reads an unsigned-byte IDX file (.gz or raw) -> uint8 [dims...].

  Raises:
    DataError: wrong magic number, or data length not matching the header.
  """
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic; the file name may not say.
      raw = gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f"cannot read {path} ({e}); re-download it") from None
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
  if found != magic or len(raw) < header:
    raise DataError(f"{path} is not an IDX file of {ndim}-D unsigned bytes "
                    f"(magic {found!r}, expected {magic:#010x}); check that "
                    "images and labels files are not swapped or corrupt")
  dims = struct.unpack(f">{ndim}I", raw[4:header])
  if len(raw) - header != math.prod(dims):
    raise DataError(f"{path}: header says {list(dims)} = {math.prod(dims)} "
                    f"bytes of data but the file has {len(raw) - header}; it "
                    "is truncated or corrupt: re-download it")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_idx_pair(directory: str, split: str, num_classes: int = 10
                  ) -> tuple[np.ndarray, np.ndarray] | None:
  """(uint8 [N, H, W, 1], int32 [N]) of `split` ('train' | 'test') from the
  IDX files in `directory`, or None if they are absent."""
  images_stem, labels_stem = _IDX_FILES[split]
  images_path = _find_idx(directory, images_stem)
  labels_path = _find_idx(directory, labels_stem)
  if images_path is None or labels_path is None:
    return None
  images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
  labels = _read_idx(labels_path, _IDX_LABELS_MAGIC)
  if len(images) != len(labels):
    raise DataError(f"{images_path} has {len(images)} images but "
                    f"{labels_path} has {len(labels)} labels; re-download "
                    "the pair")
  if len(labels) and labels.max() >= num_classes:
    raise DataError(f"{labels_path} has label {labels.max()}, expected "
                    f"0..{num_classes - 1}; is it the right dataset?")
  return images[..., None], labels.astype(np.int32)


def _pair_from_tfds(name: str, split: str, system_dir: str,
                    expected: str) -> tuple[np.ndarray, np.ndarray]:
  """The last fallback for MNIST-like sources: tfds.data_source."""
  try:
    source = tfds_source.open_source(name, split, None)
  except DataError as e:
    raise DataError(
        f"{name} not found: no {expected} in {system_dir}, and {e}. Fix: set "
        "config.data.path to a folder with the IDX files (`bash "
        "../shared/data/fetch.sh DIR` fetches Fashion-MNIST), or put them in "
        f"{system_dir}") from None
  images, labels = [], []
  for i in range(len(source)):
    example = source[i]
    images.append(np.asarray(example["image"], np.uint8).reshape(28, 28, 1))
    labels.append(int(example["label"]))
  return np.stack(images), np.array(labels, np.int32)


def load(spec: Spec, cache_dir: str | None, seed: int) -> Dataset:
  """MNIST or Fashion-MNIST from IDX files, the Debian folder, or TFDS."""
  del cache_dir  # Reading the IDX arrays is as fast as reading a cache.
  name = spec.source
  class_names = (FASHION_MNIST_CLASSES if name == "fashion_mnist" else
                 MNIST_CLASSES)
  if spec.split not in _IDX_FILES:
    raise DataError(f"config.data.split={spec.split!r}; {name} has the splits "
                    "'train' and 'test'")
  expected = ", ".join(f"{s}[.gz]" for s in _IDX_FILES[spec.split])
  if spec.path:
    directory = os.path.abspath(os.path.expanduser(spec.path))
    pair = load_idx_pair(directory, spec.split, len(class_names))
    if pair is None:
      raise DataError(f"{directory} does not hold the {name} IDX files "
                      f"{expected}; set config.data.path to their folder, or "
                      "to '' to search the default places")
    where = directory
  else:
    directory = SYSTEM_DIRS[name]
    pair = load_idx_pair(directory, spec.split, len(class_names))
    where = directory
    if pair is None:
      pair = _pair_from_tfds(name, spec.split, directory, expected)
      where = f"tfds:{name}"
  images, labels = pair
  keep = subset(len(images), spec.max_examples, seed)
  images = decode.process_array_images(images[keep], spec,
                                       f"{name} ({where})")
  logging.info("Loaded %s %s split from %s", name, spec.split, where)
  return Dataset(read_only(images), read_only(labels[keep]), class_names,
                 name)
