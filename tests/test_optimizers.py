"""Specification of wgan_jax.optimizers: torch-equivalent updates, weight clipping."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from wgan_jax import optimizers


def _opt(**fields) -> ml_collections.ConfigDict:
  opt = dict(name="adam", b1=0.0, b2=0.9, eps=1e-8, rmsprop_decay=0.99,
             schedule="constant", decay_rate=0.5, decay_steps=10)
  opt.update(fields)
  return ml_collections.ConfigDict(opt)


def _params(seed: int = 0):
  """A critic-like pytree: kernels, biases and a layer-norm scale of 1."""
  rng = np.random.default_rng(seed)
  return {
      "conv": {"kernel": jnp.asarray(rng.normal(0, 0.02, (3, 3, 2, 4)), jnp.float32),
               "bias": jnp.zeros(4)},
      "norm": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
      "dense": {"kernel": jnp.asarray(rng.normal(0, 0.5, (8, 1)), jnp.float32)},
  }


def _run(tx, params, grads_seq):
  state = tx.init(params)
  for grads in grads_seq:
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


def _random_grads(params, steps, scale, seed=1):
  keys = jax.random.split(jax.random.key(seed), steps)
  return [jax.tree.map(lambda p, k=k: scale * jax.random.normal(k, p.shape), params)
          for k in keys]


@pytest.mark.parametrize("name,lr,scale", [("rmsprop", 5e-5, 1.0),
                                           ("rmsprop", 1.0, 100.0),
                                           ("adam", 0.3, 10.0)])
def test_every_clipped_parameter_stays_within_c_after_every_update(name, lr, scale):
  c = 0.01
  tx = optimizers.make_optimizer(_opt(name=name), lr, 100, clip_value=c)
  params = _params()
  state = tx.init(params)
  for grads in _random_grads(params, 30, scale):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    for leaf in jax.tree.leaves(params):  # kernels, biases and the scale
      assert float(jnp.max(jnp.abs(leaf))) <= c
  # Large steps push parameters onto the box's faces, not only inside it.
  if lr >= 0.3:
    assert float(jnp.max(jnp.abs(params["dense"]["kernel"]))) > 0.99 * c


def test_clipping_leaves_updates_inside_the_box_unchanged():
  params = jax.tree.map(lambda p: jnp.clip(p, -0.005, 0.005), _params())
  grads = _random_grads(params, 3, 1.0)
  clipped = _run(optimizers.make_optimizer(_opt(name="rmsprop"), 1e-6, 10, 0.01),
                 params, grads)
  plain = _run(optimizers.make_optimizer(_opt(name="rmsprop"), 1e-6, 10), params, grads)
  for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(plain)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_clipping_does_not_clip_the_optimizer_state():
  tx = optimizers.make_optimizer(_opt(name="rmsprop"), 1.0, 10, clip_value=0.01)
  params = _params()
  state = tx.init(params)
  grads = jax.tree.map(lambda p: jnp.full(p.shape, 5.0), params)
  _, state = tx.update(grads, state, params)
  nu = state[0][0].nu  # RMSprop's average of squared gradients
  np.testing.assert_allclose(nu["conv"]["kernel"], 0.01 * 25.0, rtol=1e-6)


def _torch_rmsprop(param, grads, lr, alpha=0.99, eps=1e-8):
  """torch.optim.RMSprop (not centered, no momentum), written out in float64."""
  p, v = np.asarray(param, np.float64), 0.0
  for g in grads:
    g = np.asarray(g, np.float64)
    v = alpha * v + (1 - alpha) * g * g
    p = p - lr * g / (np.sqrt(v) + eps)
  return p


def _torch_adam(param, grads, lr, b1, b2, eps=1e-8):
  """torch.optim.Adam, written out in float64."""
  p, m, v = np.asarray(param, np.float64), 0.0, 0.0
  for t, g in enumerate(grads, start=1):
    g = np.asarray(g, np.float64)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
  return p


def test_rmsprop_matches_torch_semantics():
  param = jnp.array([0.5, -0.2, 1e-3])
  grads = [jnp.array([1.0, -2.0, 1e-6]), jnp.array([0.5, 3.0, -1e-6]),
           jnp.array([-0.1, 0.0, 1e-7])]
  got = _run(optimizers.make_optimizer(_opt(name="rmsprop"), 5e-3, 10), param, grads)
  np.testing.assert_allclose(got, _torch_rmsprop(param, grads, 5e-3), rtol=1e-6)


@pytest.mark.parametrize("b1,b2", [(0.0, 0.9), (0.5, 0.9), (0.5, 0.999)])
def test_adam_matches_torch_semantics(b1, b2):
  param = jnp.array([0.5, -0.2, 1e-3])
  grads = [jnp.array([1.0, -2.0, 1e-6]), jnp.array([0.5, 3.0, -1e-6]),
           jnp.array([-0.1, 0.0, 1e-7])]
  got = _run(optimizers.make_optimizer(_opt(b1=b1, b2=b2), 2e-4, 10), param, grads)
  np.testing.assert_allclose(got, _torch_adam(param, grads, 2e-4, b1, b2), rtol=1e-6)


def test_linear_schedule_decays_to_zero_over_the_run():
  schedule = optimizers.learning_rate_schedule(_opt(schedule="linear"), 2e-4, 1000)
  np.testing.assert_allclose([schedule(0), schedule(500), schedule(1000), schedule(2000)],
                             [2e-4, 1e-4, 0.0, 0.0], atol=1e-12)


def test_exponential_schedule_halves_every_decay_steps():
  schedule = optimizers.learning_rate_schedule(
      _opt(schedule="exponential", decay_rate=0.5, decay_steps=10), 1e-3, 1000)
  np.testing.assert_allclose([schedule(0), schedule(10), schedule(25)],
                             [1e-3, 5e-4, 1e-3 * 0.5 ** 2.5], rtol=1e-6)


def test_unknown_optimizer_and_bad_clip_are_refused():
  with pytest.raises(ValueError, match="Unknown config.optimizer.name 'sgd'"):
    optimizers.make_optimizer(_opt(name="sgd"), 1e-3, 10)
  with pytest.raises(ValueError, match="clip_value must be positive"):
    optimizers.clip_params(0.0)


def test_the_ema_is_its_definition_on_a_hand_computed_case():
  tx = optax.chain(optax.sgd(1.0), optimizers.track_ema(0.5, start_step=1))
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  np.testing.assert_array_equal(optimizers.ema_params(state)["w"], [1.0, -2.0])
  expected = []
  for grad in ([1.0, 0.0], [0.0, 4.0], [2.0, 2.0]):
    updates, state = tx.update({"w": jnp.array(grad)}, state, params)
    params = optax.apply_updates(params, updates)
    expected.append(np.asarray(optimizers.ema_params(state)["w"]))
  # p1 = (0, -2): copied (update 1 <= start_step); p2 = (0, -6): 0.5 p2 +
  # 0.5 ema1 = (0, -4); p3 = (-2, -8): 0.5 * (-2, -8) + 0.5 * (0, -4).
  np.testing.assert_array_equal(expected, [[0.0, -2.0], [0.0, -4.0], [-1.0, -6.0]])
  # The updates pass unchanged: the parameters are plain SGD's.
  np.testing.assert_array_equal(params["w"], [-2.0, -8.0])


def test_the_warmup_ema_equals_a_python_loop_of_tensorflows_rule():
  decay, start_step = 0.5, 2
  tx = optax.chain(optax.sgd(1.0),
                   optimizers.track_ema(decay, start_step, warmup=True))
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  rng = np.random.default_rng(0)
  average = np.array([1.0, -2.0])
  for n in range(1, 16):  # (1 + k) / (10 + k) passes 0.5 at k = 8
    grad = rng.normal(size=2).astype(np.float32)
    updates, state = tx.update({"w": jnp.asarray(grad)}, state, params)
    params = optax.apply_updates(params, updates)
    p = np.asarray(params["w"], np.float64)
    k = n - start_step
    d = min(decay, (1 + k) / (10 + k))
    average = p if n <= start_step else d * average + (1 - d) * p
    np.testing.assert_allclose(optimizers.ema_params(state)["w"], average,
                               rtol=1e-6, atol=1e-6)
  # The first averaged update weighs the old average by 2/11, not 0.5.
  first = optax.chain(optax.sgd(1.0), optimizers.track_ema(0.5, warmup=True))
  state = first.init({"w": jnp.zeros(1)})
  _, state = first.update({"w": -jnp.ones(1)}, state, {"w": jnp.zeros(1)})
  np.testing.assert_allclose(optimizers.ema_params(state)["w"], [9 / 11],
                             rtol=1e-6)


def test_an_optimizer_keeps_an_ema_only_when_asked():
  config = default.get_config()
  params = {"w": jnp.ones(3)}
  plain = optimizers.make_optimizer(config.optimizer, 1e-3, 10, ema=config.ema)
  assert optimizers.ema_params(plain.init(params)) is None
  config.ema.decay = 0.99
  kept = optimizers.make_optimizer(config.optimizer, 1e-3, 10, ema=config.ema)
  np.testing.assert_array_equal(optimizers.ema_params(kept.init(params))["w"],
                                np.ones(3))
  with pytest.raises(ValueError, match="decay must lie in"):
    optimizers.track_ema(1.0)
