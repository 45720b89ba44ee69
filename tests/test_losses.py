"""Specification of wgan_jax.losses against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wgan_jax import losses

SHAPE = (5, 4, 3, 2)  # [B, H, W, C]


def _batches(seed: int = 0):
  rng = np.random.default_rng(seed)
  real = jnp.asarray(rng.standard_normal(SHAPE), jnp.float32)
  fake = jnp.asarray(rng.standard_normal(SHAPE), jnp.float32)
  eps = jnp.asarray(rng.uniform(size=SHAPE[0]), jnp.float32)
  return real, fake, eps


def _linear_critic(w):
  """D(x) = <w, x> per sample: its input gradient is w everywhere."""
  return lambda x: jnp.sum(x * w, axis=(1, 2, 3))


@pytest.mark.parametrize("scale", [0.05, 0.7, 1.0, 3.0])
def test_penalty_of_a_linear_critic_is_squared_norm_excess(scale):
  real, fake, eps = _batches()
  w = scale * jax.random.normal(jax.random.key(1), SHAPE[1:])
  norm_w = float(jnp.sqrt(jnp.sum(w ** 2)))
  penalty, norms = losses.gradient_penalty(_linear_critic(w), real, fake, eps)
  np.testing.assert_allclose(norms, np.full(SHAPE[0], norm_w), rtol=1e-6)
  np.testing.assert_allclose(penalty, (norm_w - 1.0) ** 2, rtol=1e-5, atol=1e-7)


def test_penalty_gradient_in_critic_weights_matches_closed_form():
  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||: the double backward.
  real, fake, eps = _batches()
  w = 0.3 * jax.random.normal(jax.random.key(2), SHAPE[1:])
  grad = jax.grad(lambda w: losses.gradient_penalty(
      _linear_critic(w), real, fake, eps)[0])(w)
  norm_w = jnp.sqrt(jnp.sum(w ** 2))
  np.testing.assert_allclose(grad, 2 * (norm_w - 1) * w / norm_w, rtol=1e-5,
                             atol=1e-7)


def test_penalty_is_taken_at_the_interpolates():
  # D(x) = sum(a * x^2) has input gradient 2 a x, which depends on where it
  # is taken: only x_hat = eps * real + (1 - eps) * fake gives this value.
  real, fake, eps = _batches()
  a = jax.random.uniform(jax.random.key(3), SHAPE[1:])
  critic = lambda x: jnp.sum(a * x ** 2, axis=(1, 2, 3))  # noqa: E731
  x_hat = eps[:, None, None, None] * real + (1 - eps[:, None, None, None]) * fake
  expected_norms = np.sqrt(np.sum((2 * a * x_hat) ** 2, axis=(1, 2, 3)))
  penalty, norms = losses.gradient_penalty(critic, real, fake, eps)
  np.testing.assert_allclose(norms, expected_norms, rtol=1e-5)
  np.testing.assert_allclose(penalty, np.mean((expected_norms - 1) ** 2), rtol=1e-5)


def test_interpolates_run_from_fake_to_real():
  real, fake, _ = _batches()
  np.testing.assert_array_equal(losses.interpolates(real, fake, jnp.ones(5)), real)
  np.testing.assert_array_equal(losses.interpolates(real, fake, jnp.zeros(5)), fake)


@pytest.mark.parametrize("scale,penalized", [(0.5, False), (2.0, True)])
def test_one_sided_penalty_ignores_norms_below_one(scale, penalized):
  real, fake, eps = _batches()
  w = jnp.full(SHAPE[1:], scale / np.sqrt(np.prod(SHAPE[1:])))  # ||w|| = scale
  penalty, _ = losses.gradient_penalty(_linear_critic(w), real, fake, eps,
                                       losses.one_sided_penalty)
  expected = (scale - 1.0) ** 2 if penalized else 0.0
  np.testing.assert_allclose(penalty, expected, rtol=1e-5, atol=1e-7)


def test_penalty_has_finite_gradient_when_the_input_gradient_vanishes():
  # sqrt is not differentiable at 0; the epsilon inside keeps this finite.
  real, fake, eps = _batches()
  w = jnp.zeros(SHAPE[1:])
  penalty, grad = jax.value_and_grad(lambda w: losses.gradient_penalty(
      _linear_critic(w), real, fake, eps)[0])(w)
  np.testing.assert_allclose(penalty, 1.0, rtol=1e-5)
  assert bool(jnp.all(jnp.isfinite(grad)))


def test_penalty_is_computed_in_float32_for_bfloat16_critics():
  real, fake, eps = _batches()
  w = jnp.full(SHAPE[1:], 0.1, jnp.bfloat16)
  critic = lambda x: jnp.sum(x.astype(jnp.bfloat16) * w, axis=(1, 2, 3))  # noqa: E731
  penalty, norms = losses.gradient_penalty(critic, real, fake, eps)
  assert penalty.dtype == jnp.float32 and norms.dtype == jnp.float32
  # The input gradient of this linear critic is w, bfloat16 0.1 exactly
  # rounded (0.10009765625): the norm is taken from it in float32, so it
  # matches the float32 closed form to float32 precision, not bfloat16's.
  w32 = float(jnp.bfloat16(0.1))
  expected_norm = w32 * np.sqrt(np.prod(SHAPE[1:]))
  np.testing.assert_allclose(norms, np.full(SHAPE[0], expected_norm), rtol=1e-6)
  np.testing.assert_allclose(penalty, (expected_norm - 1.0) ** 2, rtol=1e-5)


def test_wasserstein_losses():
  d_real = jnp.array([1.0, 2.0, 3.0])
  d_fake = jnp.array([-1.0, 0.5, 0.0])
  for loss in ("wgan", "wgan-gp", "wgan-lp"):
    np.testing.assert_allclose(losses.critic_loss(loss, d_real, d_fake), -0.5 / 3 - 2.0)
    np.testing.assert_allclose(losses.generator_loss(loss, d_fake), 0.5 / 3)
  np.testing.assert_allclose(losses.wasserstein_estimate(d_real, d_fake), 2.0 + 0.5 / 3)


def test_dcgan_losses_are_binary_cross_entropy_with_non_saturating_generator():
  d_real = jnp.array([2.0, -1.0, 0.3, 40.0])
  d_fake = jnp.array([-3.0, 0.5, 1.5, -40.0])
  sigmoid = lambda x: 1 / (1 + np.exp(-np.asarray(x, np.float64)))  # noqa: E731
  expected_critic = (-np.mean(np.log(sigmoid(d_real)))
                     - np.mean(np.log(1 - sigmoid(d_fake))))
  expected_generator = -np.mean(np.log(sigmoid(d_fake)))
  np.testing.assert_allclose(losses.critic_loss("dcgan", d_real, d_fake),
                             expected_critic, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_loss("dcgan", d_fake),
                             expected_generator, rtol=1e-5)
  # Non-saturating: the gradient stays large when the critic rejects fakes.
  grad = jax.grad(lambda d: losses.generator_loss("dcgan", d))(jnp.array([-40.0]))
  np.testing.assert_allclose(grad, [-1.0], rtol=1e-5)


def test_drift_penalty_is_mean_squared_real_score():
  np.testing.assert_allclose(losses.drift_penalty(jnp.array([1.0, -3.0])), 5.0)


def test_hinge_losses():
  # Critic E[relu(1 - D(real))] + E[relu(1 + D(fake))]: only margins count.
  d_real = jnp.array([2.0, 0.5, -1.0])  # hinge terms 0, 0.5, 2
  d_fake = jnp.array([-3.0, -0.25, 1.0])  # hinge terms 0, 0.75, 2
  np.testing.assert_allclose(losses.critic_loss("hinge", d_real, d_fake),
                             2.5 / 3 + 2.75 / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.generator_loss("hinge", d_fake),
                             (3.0 + 0.25 - 1.0) / 3, rtol=1e-6)
  # No penalty and no clipping: its Lipschitz control is left to the nets.
  assert losses.LOSSES["hinge"].penalty is None
  assert not losses.LOSSES["hinge"].weight_clipping


def test_the_table_says_which_constraint_each_loss_has():
  assert losses.LOSSES["wgan"].weight_clipping
  assert losses.LOSSES["wgan-gp"].penalty is losses.two_sided_penalty
  assert losses.LOSSES["wgan-lp"].penalty is losses.one_sided_penalty
  assert losses.LOSSES["dcgan"].penalty is None
  np.testing.assert_allclose(losses.two_sided_penalty(jnp.array([0.5, 2.0])),
                             [0.25, 1.0])
  np.testing.assert_allclose(losses.one_sided_penalty(jnp.array([0.5, 2.0])),
                             [0.0, 1.0])


def test_unknown_loss_is_refused():
  with pytest.raises(ValueError, match="Unknown loss 'lsgan'"):
    losses.critic_loss("lsgan", jnp.zeros(2), jnp.zeros(2))
