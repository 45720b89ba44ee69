"""Optimizers (optax) for the generator and the critic, and weight clipping.

config.optimizer fields:
  name: 'adam' | 'rmsprop'.
  generator_learning_rate, critic_learning_rate: peak learning rates.
  b1, b2, eps: Adam's (WGAN-GP: b1 0, b2 0.9; DCGAN: b1 0.5, b2 0.999).
  rmsprop_decay: RMSprop's averaging constant (torch `alpha` 0.99; Keras `rho` 0.9).
  schedule: 'constant' | 'linear' (decay to 0 over training, as the WGAN-GP
    code) | 'exponential' (lr * decay_rate^(updates / decay_steps)).
  decay_rate, decay_steps: of the exponential schedule, counted in the
    optimizer's own updates.

config.ema (the generator's exponential moving average, Karras et al. 2018,
Yazici et al. 2019): decay (0 = off) and start_step; `track_ema` keeps the
average in the generator's optimizer state, so it is checkpointed and
resumed with it, and `ema_params` reads it back.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("adam", "rmsprop")
SCHEDULES = ("constant", "linear", "exponential")


def learning_rate_schedule(opt: ml_collections.ConfigDict, learning_rate: float,
                           total_updates: int) -> optax.Schedule:
  """Learning rate as a function of the optimizer's update count."""
  if opt.schedule == "constant":
    return optax.constant_schedule(learning_rate)
  if opt.schedule == "linear":
    return optax.linear_schedule(learning_rate, 0.0, max(1, total_updates))
  if opt.schedule == "exponential":
    return optax.exponential_decay(learning_rate, opt.decay_steps, opt.decay_rate)
  raise ValueError(f"Unknown config.optimizer.schedule {opt.schedule!r}; use "
                   f"one of {SCHEDULES}.")


def make_optimizer(opt: ml_collections.ConfigDict, learning_rate: float,
                   total_updates: int, clip_value: float | None = None,
                   ema: ml_collections.ConfigDict | None = None
                   ) -> optax.GradientTransformation:
  """The optimizer of one network, with weight clipping and the EMA chained after it.

  Args:
    opt: config.optimizer.
    learning_rate: this network's peak learning rate.
    total_updates: updates over the whole run (for the linear schedule).
    clip_value: if set, every parameter lies in [-clip_value, clip_value]
      after every update (WGAN weight clipping).
    ema: config.ema; with decay > 0 the state also holds the moving average
      of the parameters (`track_ema`).
  """
  schedule = learning_rate_schedule(opt, learning_rate, total_updates)
  if opt.name == "adam":
    tx = optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps)
  elif opt.name == "rmsprop":
    # torch/Keras RMSprop: eps added outside the square root (optax's default
    # puts it inside).
    tx = optax.rmsprop(schedule, decay=opt.rmsprop_decay, eps=opt.eps,
                       eps_in_sqrt=False)
  else:
    raise ValueError(f"Unknown config.optimizer.name {opt.name!r}; use one of "
                     f"{OPTIMIZERS}.")
  if clip_value is not None:
    tx = optax.chain(tx, clip_params(clip_value))
  if ema is not None and ema.decay > 0:
    tx = optax.chain(tx, track_ema(ema.decay, ema.start_step, ema.warmup))
  return tx


class EmaState(NamedTuple):
  """`track_ema`'s state: the updates seen and the average of the parameters."""
  count: jax.Array  # int32 []
  params: Any


def track_ema(decay: float, start_step: int = 0,
              warmup: bool = False) -> optax.GradientTransformation:
  """Keeps an exponential moving average of the parameters; the updates pass unchanged.

  After the n-th update (n = 1, 2, ...) with new parameters p_n:
  ema_n = p_n while n <= start_step, else d_n * ema_{n-1} + (1 - d_n) * p_n
  with d_n = decay, or with `warmup` d_n = min(decay, (1 + k) / (10 + k)),
  k = n - start_step (TensorFlow's ExponentialMovingAverage rule with
  num_updates = k). Chained last, p_n is exactly what `optax.apply_updates`
  gives the caller.
  """
  if not 0 < decay < 1:
    raise ValueError(f"EMA decay must lie in (0, 1), got {decay}.")

  def init_fn(params: Any) -> EmaState:
    return EmaState(jnp.zeros((), jnp.int32),
                    jax.tree.map(lambda p: jnp.array(p, copy=True), params))

  def update_fn(updates: Any, state: EmaState,
                params: Any = None) -> tuple[Any, EmaState]:
    if params is None:
      raise ValueError("track_ema needs the current params: call "
                       "tx.update(grads, opt_state, params).")
    new_params = optax.apply_updates(params, updates)
    count = state.count + 1
    copying = count <= start_step
    # Without warmup d stays a Python float: the arithmetic of runs saved
    # before the option existed, to the bit.
    d = decay
    if warmup:
      k = (count - start_step).astype(jnp.float32)
      d = jnp.minimum(jnp.float32(decay), (1.0 + k) / (10.0 + k))
    average = jax.tree.map(
        lambda e, p: jnp.where(copying, p, d * e + (1 - d) * p).astype(
            p.dtype), state.params, new_params)
    return updates, EmaState(count, average)

  return optax.GradientTransformation(init_fn, update_fn)


def ema_params(opt_state: Any) -> Any | None:
  """The moving average of the parameters held in `opt_state`, or None if it keeps none."""
  for node in jax.tree.leaves(opt_state,
                              is_leaf=lambda x: isinstance(x, EmaState)):
    if isinstance(node, EmaState):
      return node.params
  return None


def clip_params(clip_value: float) -> optax.GradientTransformation:
  """Turns updates u into clip(p + u, -c, c) - p, so new params lie in [-c, c].

  Chained after an optimizer, this is WGAN's weight clipping: the optimizer's
  state is not clipped, only the parameters. In float arithmetic
  p + (clip(p + u) - p) can round past c by an ulp of max(|p|, c); the target
  is pulled in by three ulps of that, so `optax.apply_updates` lands within
  [-c, c] exactly (a relative change of ~2e-7, far below any learning-rate
  effect).
  """
  if clip_value <= 0:
    raise ValueError(f"clip_value must be positive, got {clip_value}.")

  def init_fn(params: Any) -> optax.EmptyState:
    del params
    return optax.EmptyState()

  def update_fn(updates: Any, state: optax.EmptyState,
                params: Any = None) -> tuple[Any, optax.EmptyState]:
    if params is None:
      raise ValueError("clip_params needs the current params: call "
                       "tx.update(grads, opt_state, params).")

    def clipped_update(u: jax.Array, p: jax.Array) -> jax.Array:
      ulp = jnp.finfo(p.dtype).eps * jnp.maximum(jnp.abs(p), clip_value)
      bound = clip_value - 3 * ulp
      return jnp.clip(p + u, -bound, bound) - p

    return jax.tree.map(clipped_update, updates, params), state

  return optax.GradientTransformation(init_fn, update_fn)
