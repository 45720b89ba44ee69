"""Differentiable augmentation of the critic's inputs (DiffAugment, Zhao et al. 2020).

With config.augment.policy set (e.g. 'color,translation,cutout'), every
image the critic sees is augmented, real and generated alike, in the
critic's loss and in the generator's: the generator's gradient flows back
through the augmentation, so it learns the data, not the augmented data.
With a gradient penalty the interpolates are taken between the augmented
real and fake images. Each image gets its own random transform (a pure
function of the key, which derives from (seed, step)), so the critic stays
a per-sample function and its penalty per sample.

`AUGMENTATIONS` maps a policy entry to fn(key, x, low, high) -> x', on
images [B, H, W, C] in the model's range [low, high], as in the authors'
DiffAugment_pytorch.py (there [-1, 1]):
  'color'        brightness + U(-0.5, 0.5) * (high - low) / 2; saturation x
                 U(0, 2) around the per-pixel channel mean; contrast x
                 U(0.5, 1.5) around the image mean.
  'translation'  a shift by up to 1/8 of the size in each direction, with
                 zeros filling in (as the reference does, whatever the range).
  'cutout'       a square of half the size set to 0 at a random place
                 (partly outside the image near the border).
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _color(key: Array, x: Array, low: float, high: float) -> Array:
  b = x.shape[0]
  k_bright, k_sat, k_contrast = jax.random.split(key, 3)
  shape = (b, 1, 1, 1)
  x = x + (jax.random.uniform(k_bright, shape) - 0.5) * (high - low) / 2
  mean = jnp.mean(x, axis=3, keepdims=True)
  x = (x - mean) * (jax.random.uniform(k_sat, shape) * 2) + mean
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (jax.random.uniform(k_contrast, shape) + 0.5) + mean


def _translation(key: Array, x: Array, low: float, high: float) -> Array:
  del low, high
  b, h, w, c = x.shape
  pad_h, pad_w = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
  k_y, k_x = jax.random.split(key)
  # Shifts in [-pad, pad]; the window [pad - shift, pad - shift + size) of
  # the zero-padded image moves the content by `shift` pixels.
  shift_y = jax.random.randint(k_y, (b,), -pad_h, pad_h + 1)
  shift_x = jax.random.randint(k_x, (b,), -pad_w, pad_w + 1)
  padded = jnp.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w), (0, 0)))
  window = lambda image, dy, dx: jax.lax.dynamic_slice(  # noqa: E731
      image, (pad_h - dy, pad_w - dx, 0), (h, w, c))
  return jax.vmap(window)(padded, shift_y, shift_x)


def _cutout(key: Array, x: Array, low: float, high: float) -> Array:
  del low, high
  b, h, w, _ = x.shape
  size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
  k_y, k_x = jax.random.split(key)
  # The square's centre is anywhere in the image (as the reference's offset).
  centre_y = jax.random.randint(k_y, (b, 1, 1), 0, h + (1 - size_h % 2))
  centre_x = jax.random.randint(k_x, (b, 1, 1), 0, w + (1 - size_w % 2))
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  inside = ((rows >= centre_y - size_h // 2) & (rows < centre_y - size_h // 2 + size_h)
            & (cols >= centre_x - size_w // 2) & (cols < centre_x - size_w // 2 + size_w))
  return x * (~inside)[..., None].astype(x.dtype)


AUGMENTATIONS: dict[str, Callable[[Array, Array, float, float], Array]] = {
    "color": _color,
    "translation": _translation,
    "cutout": _cutout,
}


def parse_policy(policy: str) -> tuple[str, ...]:
  """'color,translation' -> ('color', 'translation'); '' -> () (off)."""
  names = tuple(p.strip() for p in policy.split(",") if p.strip())
  unknown = [n for n in names if n not in AUGMENTATIONS]
  if unknown:
    raise ValueError(f"Unknown augmentation(s) {unknown}; use "
                     f"{', '.join(AUGMENTATIONS)}.")
  return names


def diff_augment(key: Array, x: Array, policy: Sequence[str], low: float,
                 high: float) -> Array:
  """Images [B, H, W, C] in [low, high] through the policy's transforms, in order.

  Differentiable in x; a pure function of (key, x); the identity for an
  empty policy. Each image has its own random parameters.
  """
  for name, k in zip(policy, jax.random.split(key, max(1, len(policy)))):
    x = AUGMENTATIONS[name](k, x, low, high)
  return x
