"""The in-memory `Dataset`, `config.data` as a `Spec`, and the seeded streams.

Every loader of this package imports this module and none of them is
imported by it, so `load_dataset` (which needs every loader) lives in
`sources.py`.
"""

import dataclasses

import ml_collections
import numpy as np

# Independent random streams derived from the user's seed, one per purpose.
STREAM_EPOCH = 0
STREAM_SUBSET = 1
STREAM_TOY = 2


def rng(seed: int, stream: int, index: int = 0,
        *more: int) -> np.random.Generator:
  """Generator for one purpose (`stream`) and index, derived from `seed`."""
  # SeedSequence takes only non-negative entropy; wrap negatives to 64 bits.
  return np.random.default_rng(np.random.SeedSequence(
      int(seed) % 2**64, spawn_key=(stream, index) + tuple(more)))


def subset(total: int, max_examples: int, seed: int) -> np.ndarray:
  """Indices (sorted, int64) of the first `max_examples` of a seeded shuffle."""
  if max_examples == 0 or max_examples >= total:
    return np.arange(total)
  order = rng(seed, STREAM_SUBSET).permutation(total)
  return np.sort(order[:max_examples])


def shard_of(indices: np.ndarray, shard: tuple[int, int]) -> np.ndarray:
  """Shard `index` of `count` (shard = (index, count)): every count-th entry
  of `indices` from the index-th, so each shard samples the whole listing
  (every class of a class-sorted folder); sizes differ by at most one."""
  index, count = shard
  return indices[index::count]


def read_only(x: np.ndarray | None) -> np.ndarray | None:
  """Marks `x` read-only (in place) and returns it; None passes through."""
  # The dataset is shared by everything that samples from it; an in-place
  # edit (e.g. augmentation) would silently change every later batch.
  if x is not None:
    x.flags.writeable = False
  return x


def listing(items, limit: int | None = None) -> str:
  """'a, b, c' of the first `limit` items (all if None), for messages."""
  return ", ".join(str(i) for i in list(items)[:limit])


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A whole dataset in host memory.

  Attributes:
    examples: uint8 images [N, H, W, C], C in {1, 3}, values 0..255; or, for
      toy sources, float32 points [N, 2]. Read-only from `load_dataset`.
    labels: int32 [N] class indices into `class_names`, or None if unlabeled.
    class_names: names of the classes; () if unlabeled.
    source: the `config.data.source` it came from.
  """
  examples: np.ndarray
  labels: np.ndarray | None
  class_names: tuple[str, ...] = ()
  source: str = ""

  def __post_init__(self):
    x = self.examples
    if x.ndim == 4:
      if x.dtype != np.uint8 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 [N, H, W, 1|3], got {x.dtype} "
                         f"{x.shape}")
    elif x.ndim != 2 or x.shape[1] != 2 or x.dtype != np.float32:
      raise ValueError(f"examples must be uint8 [N, H, W, C] or float32 [N, 2],"
                       f" got {x.dtype} {x.shape}")
    if self.labels is not None:
      if self.labels.dtype != np.int32 or self.labels.shape != (len(x),):
        raise ValueError(f"labels must be int32 [{len(x)}], got "
                         f"{self.labels.dtype} {self.labels.shape}")
      if len(x) and not 0 <= self.labels.min() <= self.labels.max() < len(
          self.class_names):
        raise ValueError(f"labels must lie in [0, {len(self.class_names)})")

  @property
  def is_image(self) -> bool:
    """True for uint8 images, False for toy points."""
    return self.examples.ndim == 4

  @property
  def num_examples(self) -> int:
    return len(self.examples)

  @property
  def example_shape(self) -> tuple[int, ...]:
    """(H, W, C) for images, (2,) for toy points."""
    return tuple(self.examples.shape[1:])

  @property
  def num_classes(self) -> int:
    """Number of classes; 0 if unlabeled."""
    return len(self.class_names)

  @property
  def class_frequencies(self) -> tuple[float, ...]:
    """Fraction of the examples in each class [num_classes]; () if unlabeled."""
    if self.labels is None or not self.num_examples:
      return ()
    counts = np.bincount(self.labels, minlength=self.num_classes)
    return tuple(float(c) / self.num_examples for c in counts)

  def __repr__(self) -> str:
    # The default repr would print the arrays.
    labels = None if self.labels is None else "int32"
    names = self.class_names
    if len(names) > 10:
      names = f"<{len(names)} names>"
    return (f"Dataset(source={self.source!r}, examples={self.examples.dtype}"
            f"{list(self.examples.shape)}, labels={labels}, "
            f"class_names={names})")


@dataclasses.dataclass(frozen=True)
class Spec:
  """The fields of `config.data` that determine what is loaded.

  Built from a complete `config.data` (configs/default.py lists every field
  with its default); the values are checked by `validation.check_data`.
  """
  source: str
  path: str
  split: str
  image_size: int
  channels: int
  resize: str
  random_flip: bool
  max_examples: int
  npz_images_key: str
  npz_labels_key: str
  toy_num_examples: int
  # (index, count): load only shard `index` of `count` (shard_of) of the
  # examples; not a config field (sources.load_dataset's argument).
  shard: tuple[int, int] = (0, 1)

  @classmethod
  def from_config(cls, data: ml_collections.ConfigDict) -> "Spec":
    """Reads the fields directly: a missing one is an AttributeError."""
    return cls(**{f.name: getattr(data, f.name)
                  for f in dataclasses.fields(cls)
                  if f.default is dataclasses.MISSING})

  @property
  def pil_mode(self) -> str:
    """Pillow mode of the decoded images: 'L' for channels=1, else 'RGB'."""
    return "L" if self.channels == 1 else "RGB"
