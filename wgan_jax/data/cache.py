"""The decoded-data cache: one .npz per (source, files, preprocessing).

Decoding a folder or a TFDS dataset takes seconds to minutes, so with
`cache_dir` the decoded arrays are stored in one .npz named by a sha256 of
everything that determines them (source, absolute path, file names + sizes +
mtimes, or the zip's size + mtime, split, image_size, channels, resize,
max_examples and its seed, Pillow version). It is written to a temporary
file and renamed (`os.replace`), so readers never see a partial cache; a
later load with the same key only reads that file. Stale entries are never
deleted: remove the directory to reclaim space.
"""

from collections.abc import Callable
import hashlib
import json
import os
import tempfile
from typing import Any

from absl import logging
import numpy as np
import PIL

from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import read_only

# Bump when decoding changes, so old cache entries stop matching.
CACHE_VERSION = 1


def cached(cache_dir: str | None, spec: Spec, key: dict[str, Any], seed: int,
           label: str, build: Callable[[], Dataset]) -> Dataset:
  """Returns build(), stored under cache_dir keyed by `key` + preprocessing.

  Args:
    cache_dir: the cache folder; None = no cache, just build().
    spec: the preprocessing fields become part of the key.
    key: what identifies the source's data (path, file signatures, split).
    seed: part of the key when spec.max_examples picks a seeded subset.
    label: readable part of the file name (e.g. the folder's name).
    build: decodes the dataset; called only on a cache miss.
  """
  if cache_dir is None:
    return build()
  full_key = dict(
      key, version=CACHE_VERSION, pillow=PIL.__version__, source=spec.source,
      image_size=spec.image_size, channels=spec.channels, resize=spec.resize,
      max_examples=spec.max_examples,
      # The subset depends on the seed; the full set does not.
      subset_seed=seed if spec.max_examples else None)
  if spec.shard[1] > 1:  # Absent otherwise: earlier caches stay valid.
    full_key["shard"] = list(spec.shard)
  digest = hashlib.sha256(
      json.dumps(full_key, sort_keys=True).encode()).hexdigest()[:24]
  safe_label = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
  name = f"{spec.source.replace(':', '_')}-{safe_label}-{digest}.npz"
  file = os.path.join(os.path.expanduser(cache_dir), name)
  if os.path.exists(file):
    try:
      dataset = _read(file, spec.source)
      logging.info("Loaded %s from cache %s", dataset, file)
      return dataset
    except Exception as e:  # pylint: disable=broad-except
      # A cache is disposable: anything wrong with it means rebuild it.
      logging.warning("Ignoring unreadable cache %s (%s); rebuilding", file, e)
  dataset = build()
  try:
    _write(file, dataset)
    logging.info("Cached %s as %s", dataset, file)
  except OSError as e:
    logging.warning("Could not write cache %s: %s", file, e)
  return dataset


def _write(file: str, dataset: Dataset):
  """Writes `dataset` to `file` atomically (temporary file + os.replace)."""
  directory = os.path.dirname(file)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
  try:
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache.
    with os.fdopen(fd, "wb") as f:
      np.savez(
          f, examples=dataset.examples,
          labels=(np.zeros(0, np.int32) if dataset.labels is None
                  else dataset.labels),
          has_labels=np.array(dataset.labels is not None),
          class_names=np.array(dataset.class_names, dtype=np.str_))
    os.replace(tmp, file)
  except BaseException:
    os.unlink(tmp)
    raise


def _read(file: str, source: str) -> Dataset:
  with np.load(file, allow_pickle=False) as f:
    examples = f["examples"]
    labels = f["labels"] if bool(f["has_labels"]) else None
    class_names = tuple(str(c) for c in f["class_names"])
  return Dataset(read_only(examples), read_only(labels), class_names, source)
