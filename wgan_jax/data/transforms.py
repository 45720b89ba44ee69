"""Value ranges and flips, on host (numpy) or device (jax, also under jit).

Imports only numpy and jax: the compiled train step uses these functions and
none of the host loader.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # np.ndarray or jax.Array


def _xp(x: Array):
  # jax.Array includes tracers, so this stays on device under jit.
  return jnp if isinstance(x, jax.Array) else np


# The value range [low, high] of images for each image output activation.
IMAGE_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def to_model_range(images: Array, output_activation: str) -> Array:
  """uint8 images -> float32 in the generator's output range.

  Args:
    images: uint8 [..., H, W, C] (0..255), or float points (toy sources).
    output_activation: 'tanh' -> [-1, 1] as x / 127.5 - 1; 'sigmoid' ->
      [0, 1] as x / 255. Ignored for float input (toy points, 'linear').

  Returns:
    float32, same shape and array type (np or jax) as `images`. Float input
    is returned unchanged apart from the cast.
  """
  # jnp.issubdtype also knows bfloat16, which np.issubdtype does not.
  if jnp.issubdtype(images.dtype, jnp.floating):
    return images.astype(np.float32)
  if images.dtype != np.uint8:
    raise ValueError(f"to_model_range expects uint8 images or float points, "
                     f"got {images.dtype}")
  x = images.astype(np.float32)
  if output_activation == "tanh":
    return x / 127.5 - 1.0
  if output_activation == "sigmoid":
    return x / 255.0
  raise ValueError(f"output_activation={output_activation!r}; images need "
                   "'tanh' or 'sigmoid'")


def to_uint8(images: Array, output_activation: str) -> Array:
  """Inverse of `to_model_range`: rounds to nearest and clips to 0..255.

  Args:
    images: float [..., H, W, C] in the range of `output_activation`
      ('tanh': [-1, 1], 'sigmoid': [0, 1]); uint8 input is returned as is.

  Returns:
    uint8, same shape and array type (np or jax) as `images`.
  """
  if images.dtype == np.uint8:
    return images
  x = images.astype(np.float32)
  if output_activation == "tanh":
    x = (x + 1.0) * 127.5
  elif output_activation == "sigmoid":
    x = x * 255.0
  else:
    raise ValueError(f"output_activation={output_activation!r}; images need "
                     "'tanh' or 'sigmoid'")
  xp = _xp(images)
  return xp.clip(xp.round(x), 0, 255).astype(np.uint8)


def flip_horizontally(images: Array, flips: Array) -> jax.Array:
  """Mirrors left-right the images whose `flips` entry is True.

  Args:
    images: [..., N, H, W, C], any dtype.
    flips: bool [..., N] (the train step draws it from its step key).

  Returns:
    jax array like `images`.
  """
  images = jnp.asarray(images)
  flips = jnp.asarray(flips).reshape(flips.shape + (1, 1, 1))
  return jnp.where(flips, jnp.flip(images, axis=-2), images)
