"""Whole datasets as host arrays (sources.py), batches as a function of step.

The device-side value ranges and flips are in `wgan_jax.data.transforms`.
Names are imported on first use (PEP 562), so that importing
`wgan_jax.data.transforms` (the train step does) or the tables here loads no
decoder: Pillow and the loaders come with `load_dataset`.
"""

import importlib
from typing import Any

# Public name -> the module of this package that defines it.
_EXPORTS = {
    "DataError": "wgan_jax.errors",
    "Dataset": "wgan_jax.data.dataset",
    "FASHION_MNIST_CLASSES": "wgan_jax.data.idx",
    "IMAGE_EXTENSIONS": "wgan_jax.data.folder",
    "MNIST_CLASSES": "wgan_jax.data.idx",
    "RESIZE_MODES": "wgan_jax.data.decode",
    "SOURCES": "wgan_jax.data.sources",
    "SYSTEM_DIRS": "wgan_jax.data.idx",
    "TOY_SOURCES": "wgan_jax.data.toy",
    "batch_indices": "wgan_jax.data.batching",
    "known_source": "wgan_jax.data.sources",
    "load_dataset": "wgan_jax.data.sources",
    "toy_modes": "wgan_jax.data.toy",
    "toy_points": "wgan_jax.data.toy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name not in _EXPORTS:
    raise AttributeError(f"module 'wgan_jax.data' has no attribute {name!r}")
  value = getattr(importlib.import_module(_EXPORTS[name]), name)
  globals()[name] = value  # Later look-ups skip this function.
  return value


def __dir__() -> list[str]:
  return __all__
