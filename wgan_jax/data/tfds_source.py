"""source='tfds:NAME': `tfds.data_source(NAME, split)`, without TensorFlow.

The images (the 'image' feature, else the first Image feature) and the
'label' ClassLabel if there is one; converted like decoded files and cached
like folders. The dataset must be prepared as array_record (`tfds build
NAME --file_format=array_record`); tensorflow_datasets is imported only
when such a source loads.
"""

import os

from absl import logging
import numpy as np
from PIL import Image

from wgan_jax.data import cache
from wgan_jax.data import decode
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.dataset import Spec
from wgan_jax.data.dataset import listing
from wgan_jax.data.dataset import shard_of
from wgan_jax.data.dataset import subset
from wgan_jax.errors import DataError

PREFIX = "tfds:"


def open_source(name: str, split: str, data_dir: str | None):
  """tfds.data_source(name, split), with failures as DataError."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises assorted types (DatasetNotFoundError, FileNotFoundError,
    # AssertionError, ...) for the same user-level problem.
    reason = str(e) if len(str(e)) < 300 else str(e)[:300] + " ..."
    raise DataError(
        f"tfds.data_source({name!r}, split={split!r}, data_dir={data_dir!r}) "
        f"failed ({type(e).__name__}: {reason}); check the name and split, and "
        "prepare the dataset in array_record format first (`tfds build "
        f"{name} --file_format=array_record`)") from None


def load(spec: Spec, cache_dir: str | None, seed: int) -> Dataset:
  """Images (and the 'label' ClassLabel, if any) of a TFDS dataset."""
  name = spec.source[len(PREFIX):]
  source = open_source(name, spec.split, spec.path or None)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = source.dataset_info.features
  image_keys = [k for k, f in features.items()
                if isinstance(f, tfds.features.Image)]
  if not image_keys:
    raise DataError(f"tfds:{name} has no image feature (features: "
                    f"{listing(features)}); use another source")
  image_key = "image" if "image" in image_keys else image_keys[0]
  label_feature = features["label"] if "label" in features else None
  has_labels = hasattr(label_feature, "names")
  class_names = tuple(label_feature.names) if has_labels else ()
  natural_channels = features[image_key].shape[-1]
  if spec.channels == 0 and natural_channels not in (1, 3):
    raise DataError(f"tfds:{name} images have {natural_channels} channels; "
                    "set config.data.channels to 1 or 3")
  mode = "L" if (spec.channels or natural_channels) == 1 else "RGB"
  keep = shard_of(subset(len(source), spec.max_examples, seed), spec.shard)

  def build() -> Dataset:
    logging.info("Reading %d examples of tfds:%s %s", len(keep), name,
                 spec.split)
    arrays, labels, names = [], [], []
    for i in keep:
      example = source[int(i)]
      image = np.asarray(example[image_key], np.uint8)
      if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
      try:
        arrays.append(decode.pil_to_array(Image.fromarray(image), mode,
                                          spec.image_size, spec.resize))
      except decode.SizeMismatch as e:
        raise DataError(
            f"tfds:{name} example {i} is {e}, not {spec.image_size}x"
            f"{spec.image_size}, and config.data.resize='keep'; set resize "
            "to 'resize' or 'resize_crop'") from None
      names.append(f"example {i}")
      if has_labels:
        labels.append(int(example["label"]))
    examples = decode.stack_same_size(arrays, names, f"tfds:{name}")
    return Dataset(examples, np.array(labels, np.int32) if has_labels else None,
                   class_names, spec.source)

  data_dir = str(getattr(source.dataset_info, "data_dir", "") or "")
  files = []
  if os.path.isdir(data_dir):
    files = [[f, os.path.getsize(os.path.join(data_dir, f)),
              os.stat(os.path.join(data_dir, f)).st_mtime_ns]
             for f in sorted(os.listdir(data_dir))]
  key = {"name": name, "split": spec.split, "data_dir": data_dir,
         "files": files, "num_records": len(source)}
  return cache.cached(cache_dir, spec, key, seed, name, build)
