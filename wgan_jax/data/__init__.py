"""Whole datasets as host arrays (sources.py), batches as a function of step.

The device-side value ranges and flips are in `wgan_jax.data.transforms`.
"""

from wgan_jax.data.batching import batch_indices
from wgan_jax.data.dataset import Dataset
from wgan_jax.data.decode import RESIZE_MODES
from wgan_jax.data.folder import IMAGE_EXTENSIONS
from wgan_jax.data.idx import FASHION_MNIST_CLASSES
from wgan_jax.data.idx import MNIST_CLASSES
from wgan_jax.data.idx import SYSTEM_DIRS
from wgan_jax.data.sources import SOURCES
from wgan_jax.data.sources import load_dataset
from wgan_jax.data.toy import TOY_SOURCES
from wgan_jax.data.toy import toy_modes
from wgan_jax.data.toy import toy_points
from wgan_jax.errors import DataError

__all__ = [
    "DataError",
    "Dataset",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "MNIST_CLASSES",
    "RESIZE_MODES",
    "SOURCES",
    "SYSTEM_DIRS",
    "TOY_SOURCES",
    "batch_indices",
    "load_dataset",
    "toy_modes",
    "toy_points",
]
