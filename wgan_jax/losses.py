"""GAN objectives as pure functions of critic outputs, in one table.

Critic outputs `d_real`, `d_fake` are float arrays [B] of unbounded scores
(logits for 'dcgan'). Every loss is a scalar that its network minimizes.

`LOSSES[config.loss]` is a `Loss`: the critic's and the generator's
adversarial losses, which gradient penalty applies (if any) and whether the
critic's weights are clipped. Adding a loss is one entry here and one test;
the train step, the optimizers and config validation read the table.

  'wgan'     Arjovsky et al. 2017: critic E[D(fake)] - E[D(real)], generator
             -E[D(fake)]; the Lipschitz constraint is weight clipping (an
             optimizer transform, see optimizers.clip_params).
  'wgan-gp'  Gulrajani et al. 2017: the same plus lambda * E[(||grad D(x_hat)|| - 1)^2].
  'wgan-lp'  Petzka et al. 2018: the one-sided penalty E[max(0, ||grad D|| - 1)^2].
  'dcgan'    Goodfellow et al. 2014 with the non-saturating generator loss
             (binary cross-entropy on logits).
  'hinge'    Lim & Ye 2017 / Miyato et al. 2018: critic
             E[relu(1 - D(real))] + E[relu(1 + D(fake))], generator -E[D(fake)].
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

# Inside the square root of the penalty's norm: the gradient of sqrt at 0 is
# infinite, so a critic with zero input gradient (e.g. dead ReLUs) would NaN.
_NORM_EPSILON = 1e-12


def wasserstein_critic_loss(d_real: Array, d_fake: Array) -> Array:
  """E[D(fake)] - E[D(real)]: minus the critic's estimate of W1."""
  return jnp.mean(d_fake) - jnp.mean(d_real)


def wasserstein_generator_loss(d_fake: Array) -> Array:
  """-E[D(fake)]."""
  return -jnp.mean(d_fake)


def bce_critic_loss(d_real: Array, d_fake: Array) -> Array:
  """-log sigmoid(d_real) - log(1 - sigmoid(d_fake)), stably (logits)."""
  return jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))


def non_saturating_generator_loss(d_fake: Array) -> Array:
  """-log sigmoid(d_fake): its gradient stays large when fakes are rejected."""
  return jnp.mean(jax.nn.softplus(-d_fake))


def hinge_critic_loss(d_real: Array, d_fake: Array) -> Array:
  """E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
  return jnp.mean(jax.nn.relu(1.0 - d_real)) + jnp.mean(jax.nn.relu(1.0 + d_fake))


def two_sided_penalty(norms: Array) -> Array:
  """(||g|| - 1)^2 per sample (WGAN-GP)."""
  return jnp.square(norms - 1.0)


def one_sided_penalty(norms: Array) -> Array:
  """max(0, ||g|| - 1)^2 per sample (WGAN-LP)."""
  return jnp.square(jnp.maximum(norms - 1.0, 0.0))


@dataclasses.dataclass(frozen=True)
class Loss:
  """One objective: what each player minimizes and how the critic is constrained.

  Attributes:
    critic: (d_real [B], d_fake [B]) -> scalar adversarial critic loss.
    generator: d_fake [B] -> scalar generator loss.
    penalty: per-sample function of the input-gradient norms [B] -> [B],
      averaged and weighted by config.gp_weight; None: no gradient penalty.
    weight_clipping: the critic's parameters are clipped to
      [-config.clip_value, config.clip_value] after every update.
  """
  critic: Callable[[Array, Array], Array]
  generator: Callable[[Array], Array]
  penalty: Callable[[Array], Array] | None = None
  weight_clipping: bool = False


LOSSES: dict[str, Loss] = {
    "wgan": Loss(wasserstein_critic_loss, wasserstein_generator_loss,
                 weight_clipping=True),
    "wgan-gp": Loss(wasserstein_critic_loss, wasserstein_generator_loss,
                    penalty=two_sided_penalty),
    "wgan-lp": Loss(wasserstein_critic_loss, wasserstein_generator_loss,
                    penalty=one_sided_penalty),
    "dcgan": Loss(bce_critic_loss, non_saturating_generator_loss),
    "hinge": Loss(hinge_critic_loss, wasserstein_generator_loss),
}


def get(name: str) -> Loss:
  """LOSSES[name], or a ValueError that lists the losses."""
  if name not in LOSSES:
    raise ValueError(f"Unknown loss {name!r}; use one of {sorted(LOSSES)}.")
  return LOSSES[name]


def critic_loss(loss: str, d_real: Array, d_fake: Array) -> Array:
  """The critic's adversarial loss (no penalty): scalar."""
  return get(loss).critic(d_real, d_fake)


def generator_loss(loss: str, d_fake: Array) -> Array:
  """The generator's loss on critic outputs of its samples: scalar."""
  return get(loss).generator(d_fake)


def wasserstein_estimate(d_real: Array, d_fake: Array) -> Array:
  """E[D(real)] - E[D(fake)]: the critic's estimate of W1 (up to its Lipschitz constant)."""
  return jnp.mean(d_real) - jnp.mean(d_fake)


def interpolates(real: Array, fake: Array, eps: Array) -> Array:
  """x_hat = eps * real + (1 - eps) * fake, eps [B] broadcast per sample."""
  eps = eps.reshape(eps.shape + (1,) * (real.ndim - 1)).astype(real.dtype)
  return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic_fn: Callable[[Array], Array], real: Array,
                     fake: Array, eps: Array,
                     penalty: Callable[[Array], Array] = two_sided_penalty
                     ) -> tuple[Array, Array]:
  """The WGAN-GP penalty at random interpolates, in float32.

  Args:
    critic_fn: x [B, ...] -> D(x) [B]; must treat samples independently (no
      batch norm), so that the gradient of sum_b D(x)_b is per sample.
    real, fake: [B, ...] batches (fake already detached).
    eps: [B] interpolation weights, U[0, 1].
    penalty: per-sample function of the norms (`two_sided_penalty`, or
      `one_sided_penalty`: only norms above 1, WGAN-LP).

  Returns:
    (penalty, norms): the scalar E[penalty(||g||)], e.g. E[(||g|| - 1)^2], and
    the per-sample gradient norms ||g_b||_2 [B], over all non-batch axes.
  """
  x_hat = interpolates(real.astype(jnp.float32), fake.astype(jnp.float32), eps)
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x).astype(jnp.float32)))(x_hat)
  grads = grads.astype(jnp.float32).reshape(grads.shape[0], -1)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=1) + _NORM_EPSILON)
  return jnp.mean(penalty(norms)), norms


def class_cross_entropy(logits: Array, labels: Array) -> Array:
  """Mean softmax cross-entropy of logits [B, K] for int labels [B]: the
  auxiliary classifier's term (AC-GAN), over all K classes."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def drift_penalty(d_real: Array) -> Array:
  """E[D(real)^2]: keeps critic outputs near 0 (Karras et al. 2018's epsilon drift)."""
  return jnp.mean(jnp.square(d_real))
