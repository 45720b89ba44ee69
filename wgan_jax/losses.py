"""GAN objectives as pure functions of critic outputs.

Critic outputs `d_real`, `d_fake` are float arrays [B] of unbounded scores
(logits for 'dcgan'). Every loss is a scalar that its network minimizes.

Losses (config.loss):
  'wgan'     Arjovsky et al. 2017: critic E[D(fake)] - E[D(real)], generator
             -E[D(fake)]; the Lipschitz constraint is weight clipping (an
             optimizer transform, see optimizers.clip_params).
  'wgan-gp'  Gulrajani et al. 2017: the same plus lambda * E[(||grad D(x_hat)|| - 1)^2].
  'wgan-lp'  Petzka et al. 2018: the one-sided penalty E[max(0, ||grad D|| - 1)^2].
  'dcgan'    Goodfellow et al. 2014 with the non-saturating generator loss
             (binary cross-entropy on logits).
"""

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

LOSSES = ("wgan", "wgan-gp", "wgan-lp", "dcgan")
GRADIENT_PENALTY_LOSSES = ("wgan-gp", "wgan-lp")

# Inside the square root of the penalty's norm: the gradient of sqrt at 0 is
# infinite, so a critic with zero input gradient (e.g. dead ReLUs) would NaN.
_NORM_EPSILON = 1e-12


def critic_loss(loss: str, d_real: Array, d_fake: Array) -> Array:
  """The critic's adversarial loss (no penalty): scalar."""
  if loss in ("wgan", "wgan-gp", "wgan-lp"):
    return jnp.mean(d_fake) - jnp.mean(d_real)
  if loss == "dcgan":
    # -log sigmoid(d_real) - log(1 - sigmoid(d_fake)), stably.
    return jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))
  raise ValueError(f"Unknown loss {loss!r}; use one of {LOSSES}.")


def generator_loss(loss: str, d_fake: Array) -> Array:
  """The generator's loss on critic outputs of its samples: scalar."""
  if loss in ("wgan", "wgan-gp", "wgan-lp"):
    return -jnp.mean(d_fake)
  if loss == "dcgan":
    # Non-saturating: -log sigmoid(d_fake).
    return jnp.mean(jax.nn.softplus(-d_fake))
  raise ValueError(f"Unknown loss {loss!r}; use one of {LOSSES}.")


def wasserstein_estimate(d_real: Array, d_fake: Array) -> Array:
  """E[D(real)] - E[D(fake)]: the critic's estimate of W1 (up to its Lipschitz constant)."""
  return jnp.mean(d_real) - jnp.mean(d_fake)


def interpolates(real: Array, fake: Array, eps: Array) -> Array:
  """x_hat = eps * real + (1 - eps) * fake, eps [B] broadcast per sample."""
  eps = eps.reshape(eps.shape + (1,) * (real.ndim - 1)).astype(real.dtype)
  return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic_fn: Callable[[Array], Array], real: Array,
                     fake: Array, eps: Array,
                     one_sided: bool = False) -> tuple[Array, Array]:
  """The WGAN-GP penalty at random interpolates, in float32.

  Args:
    critic_fn: x [B, ...] -> D(x) [B]; must treat samples independently (no
      batch norm), so that the gradient of sum_b D(x)_b is per sample.
    real, fake: [B, ...] batches (fake already detached).
    eps: [B] interpolation weights, U[0, 1].
    one_sided: penalize only norms above 1 (WGAN-LP).

  Returns:
    (penalty, norms): the scalar E[(||g|| - 1)^2] (or its one-sided form) and
    the per-sample gradient norms ||g_b||_2 [B], over all non-batch axes.
  """
  x_hat = interpolates(real.astype(jnp.float32), fake.astype(jnp.float32), eps)
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x).astype(jnp.float32)))(x_hat)
  grads = grads.astype(jnp.float32).reshape(grads.shape[0], -1)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=1) + _NORM_EPSILON)
  excess = norms - 1.0
  if one_sided:
    excess = jnp.maximum(excess, 0.0)
  return jnp.mean(jnp.square(excess)), norms


def drift_penalty(d_real: Array) -> Array:
  """E[D(real)^2]: keeps critic outputs near 0 (Karras et al. 2018's epsilon drift)."""
  return jnp.mean(jnp.square(d_real))
