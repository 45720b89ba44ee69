"""`load_dataset`: one `Dataset` in host memory from a complete `config.data`.

Every source is loaded once into memory: uint8 images [N, H, W, C] (C = 1
or 3), or float32 points [N, 2] for the toy sets. `config.data.source` picks
the loader:

  folder           A directory or a .zip of images, flat (unlabeled) or with one
                   subfolder per class (folder.py).
  fashion_mnist,   The original IDX files, the Debian folder, or TFDS (idx.py).
  mnist
  npz              Named arrays of an .npz file (npz.py).
  tfds:NAME        `tfds.data_source(NAME, split)`, no TensorFlow
                   (tfds_source.py).
  toy:8gaussians,  The 2-D mixtures of the WGAN-GP paper (toy.py).
  toy:25gaussians

Images are converted to `data.channels` and brought to `data.image_size` per
`data.resize` (decode.py); folders and TFDS sets are cached (cache.py). A
bad field value raises `ConfigError` (validation.check_data); any problem
with the input raises one `DataError` that names the file and the fix.
"""

from collections.abc import Callable
import dataclasses

from absl import logging
import ml_collections
import numpy as np

from wgan_jax.data import folder
from wgan_jax.data import idx
from wgan_jax.data import npz
from wgan_jax.data import tfds_source
from wgan_jax.data import toy
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import read_only
from wgan_jax.data.dataset import shard_of
from wgan_jax.errors import DataError

# loader(spec, cache_dir, seed) -> Dataset.
Loader = Callable[[Spec, str | None, int], Dataset]

# Every source but the tfds:NAME family, which `_loader` matches by prefix.
_LOADERS: dict[str, Loader] = {
    "folder": folder.load,
    "fashion_mnist": idx.load,
    "mnist": idx.load,
    "npz": npz.load,
    **{name: toy.load for name in toy.TOY_SOURCES},
}

SOURCES = tuple(_LOADERS) + (f"{tfds_source.PREFIX}NAME",)


def known_source(source: object) -> bool:
  """Whether `source` names a loader: a key of the table, or tfds:NAME."""
  return isinstance(source, str) and (
      source in _LOADERS or source.startswith(tfds_source.PREFIX)
      and source != tfds_source.PREFIX)


def _reads_its_shard(source: str) -> bool:
  """Whether the loader reads and decodes only spec.shard: folders, zips, TFDS."""
  return source == "folder" or source.startswith(tfds_source.PREFIX)


def _loader(source: str) -> Loader:
  if source.startswith(tfds_source.PREFIX):
    return tfds_source.load
  return _LOADERS[source]


def load_dataset(data: ml_collections.ConfigDict, cache_dir: str | None = None,
                 seed: int = 0, shard: tuple[int, int] = (0, 1)) -> Dataset:
  """Loads `config.data` into memory.

  Args:
    data: a complete `config.data` (every field of
      `configs.default.base_config().data`).
    cache_dir: where decoded folder / TFDS images are cached; None = no cache.
    seed: picks the max_examples subset and draws the toy points.
    shard: (index, count): only shard `index` of `count` of the examples
      (dataset.shard_of: every count-th of the max_examples subset). Folders,
      zips and TFDS read and decode only those; the other sources are
      decoded whole, then cut.

  Returns:
    A Dataset with read-only arrays: uint8 [N, H, W, C] images, or float32
    [N, 2] toy points.

  Raises:
    ConfigError: a field has a value that cannot work (validation.check_data).
    DataError: the data is unusable; the message says which file and how to
      fix it.
  """
  # Function-level: validation reads this package's tables.
  from wgan_jax import validation  # pylint: disable=g-import-not-at-top
  validation.check_data(data)
  index, count = shard
  if not 0 <= index < count:
    raise ValueError(f"shard {shard}: need 0 <= index < count")
  spec = dataclasses.replace(Spec.from_config(data), shard=(index, count))
  dataset = _loader(spec.source)(spec, cache_dir, seed)
  if spec.shard[1] > 1 and not _reads_its_shard(spec.source):
    keep = shard_of(np.arange(dataset.num_examples), spec.shard)
    dataset = Dataset(
        dataset.examples[keep],
        None if dataset.labels is None else dataset.labels[keep],
        dataset.class_names, dataset.source)
  if len(dataset.examples) == 0:
    raise DataError(f"{spec.source} at {spec.path or '(default)'} gave no "
                    "examples; check config.data.path and split")
  read_only(dataset.examples)
  read_only(dataset.labels)
  logging.info("Loaded %s", dataset)
  return dataset
