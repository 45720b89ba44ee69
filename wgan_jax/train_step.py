"""The compiled GAN train step: n_critic critic updates, then one generator update.

One jitted call per generator step. The critic updates run inside the call
(`lax.scan`, unrolled on CPU), each on its own real batch, noise and
interpolation weights. All randomness derives from (config.seed, step), so a
resumed run replays exactly the same numbers.
"""

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh

from wgan_jax import input_pipeline
from wgan_jax import losses
from wgan_jax import models
from wgan_jax import optimizers
from wgan_jax import parallel

Array = jax.Array
Metrics = dict[str, Array]

# fold_in constants that separate the random streams of one seed.
INIT_STREAM = 0
TRAIN_STREAM = 1


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree of arrays."""
  step: Array  # int32 [], generator steps done
  generator_params: Any
  generator_batch_stats: Any  # {} when the generator has no batch norm
  critic_params: Any
  critic_batch_stats: Any
  generator_opt_state: optax.OptState
  critic_opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class GAN:
  """Everything static about a run: networks, optimizers, objective, sizes."""
  generator: nn.Module
  critic: nn.Module
  generator_tx: optax.GradientTransformation
  critic_tx: optax.GradientTransformation
  loss: str
  gp_weight: float
  drift_weight: float
  z_dim: int
  data_shape: tuple[int, ...]  # per example: (H, W, C) or (D,)
  batch_size: int  # global
  n_critic: int
  seed: int
  output_activation: str
  random_flip: bool
  unroll_critic: bool  # unroll the critic loop instead of a rolled scan


def create_gan(config: ml_collections.ConfigDict,
               data_shape: tuple[int, ...]) -> GAN:
  """The static GAN for a (validated) config and per-example data shape."""
  generator, critic = models.create_models(config.model, data_shape)
  opt = config.optimizer
  clip = config.clip_value if config.loss == "wgan" else None
  loop = config.critic_loop
  if loop == "auto":
    loop = "unroll" if jax.default_backend() == "cpu" else "scan"
  return GAN(
      generator=generator,
      critic=critic,
      generator_tx=optimizers.make_optimizer(
          opt, opt.generator_learning_rate, config.num_train_steps),
      critic_tx=optimizers.make_optimizer(
          opt, opt.critic_learning_rate,
          config.num_train_steps * config.n_critic, clip_value=clip),
      loss=config.loss,
      gp_weight=(config.gp_weight
                 if config.loss in losses.GRADIENT_PENALTY_LOSSES else 0.0),
      drift_weight=config.drift_weight,
      z_dim=config.model.z_dim,
      data_shape=tuple(data_shape),
      batch_size=config.batch_size,
      n_critic=config.n_critic,
      seed=config.seed,
      output_activation=config.model.output_activation,
      random_flip=bool(config.data.random_flip) and len(data_shape) == 3,
      unroll_critic=loop == "unroll",
  )


def create_train_state(gan: GAN) -> TrainState:
  """Initial state: parameters from fold_in(key(seed), INIT_STREAM)."""
  key = jax.random.fold_in(jax.random.key(gan.seed), INIT_STREAM)
  generator_key, critic_key = jax.random.split(key)
  z = jnp.zeros((1, gan.z_dim), jnp.float32)
  generator_vars = models.init_variables(gan.generator, generator_key, z)
  x = jnp.zeros((1,) + gan.data_shape, jnp.float32)
  critic_vars = models.init_variables(gan.critic, critic_key, x)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      generator_params=generator_vars["params"],
      generator_batch_stats=generator_vars.get("batch_stats", {}),
      critic_params=critic_vars["params"],
      critic_batch_stats=critic_vars.get("batch_stats", {}),
      generator_opt_state=gan.generator_tx.init(generator_vars["params"]),
      critic_opt_state=gan.critic_tx.init(critic_vars["params"]),
  )


def apply_model(module: nn.Module, params: Any, batch_stats: Any, x: Array,
                train: bool) -> tuple[Array, Any]:
  """module(x) and its batch statistics, updated when `train` (else unchanged)."""
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
    if train:
      out, updates = module.apply(variables, x, train=True,
                                  mutable=["batch_stats"])
      return out, updates["batch_stats"]
  return module.apply(variables, x, train=train), batch_stats


class StepNoise(NamedTuple):
  """The randomness of one generator step, a pure function of (seed, step)."""
  critic_z: Array  # float32 [n_critic, B, z_dim]
  eps: Array  # float32 [n_critic, B], GP interpolation weights U[0, 1]
  flips: Array  # bool [n_critic, B], horizontal flips of the real images
  generator_z: Array  # float32 [B, z_dim]


def step_noise(gan: GAN, step: Array) -> StepNoise:
  """Noise for generator step `step`: key = fold_in(train key, step), split by purpose."""
  key = jax.random.fold_in(
      jax.random.fold_in(jax.random.key(gan.seed), TRAIN_STREAM), step)
  z_key, eps_key, flip_key, generator_key = jax.random.split(key, 4)
  shape = (gan.n_critic, gan.batch_size)
  flips = (jax.random.bernoulli(flip_key, 0.5, shape) if gan.random_flip
           else jnp.zeros(shape, bool))
  return StepNoise(
      critic_z=jax.random.normal(z_key, shape + (gan.z_dim,)),
      eps=jax.random.uniform(eps_key, shape),
      flips=flips,
      generator_z=jax.random.normal(generator_key, (gan.batch_size, gan.z_dim)),
  )


def prepare_reals(gan: GAN, reals: Array, flips: Array) -> Array:
  """uint8 images (or float points) [..., B, *data_shape] -> the generator's range, flipped."""
  x = input_pipeline.to_model_range(reals, gan.output_activation)
  if gan.random_flip:
    x = input_pipeline.flip_horizontally(x, flips)
  return x


def critic_objective(gan: GAN, critic_params: Any, critic_batch_stats: Any,
                     real: Array, fake: Array,
                     eps: Array) -> tuple[Array, tuple[Metrics, Any]]:
  """The critic's loss on one batch, with its metrics and new batch stats."""
  d_real, stats = apply_model(gan.critic, critic_params, critic_batch_stats,
                              real, train=True)
  d_fake, stats = apply_model(gan.critic, critic_params, stats, fake,
                              train=True)
  loss = losses.critic_loss(gan.loss, d_real, d_fake)
  metrics = {
      "critic/real": jnp.mean(d_real),
      "critic/fake": jnp.mean(d_fake),
      "critic/wasserstein": losses.wasserstein_estimate(d_real, d_fake),
  }
  if gan.gp_weight:
    # A gradient-penalty critic has no batch statistics (config validation).
    critic_fn = lambda x: gan.critic.apply({"params": critic_params}, x)  # noqa: E731
    penalty, norms = losses.gradient_penalty(
        critic_fn, real, fake, eps, one_sided=gan.loss == "wgan-lp")
    loss += gan.gp_weight * penalty
    metrics["critic/gradient_penalty"] = penalty
    metrics["critic/input_grad_norm"] = jnp.mean(norms)
  if gan.drift_weight:
    drift = losses.drift_penalty(d_real)
    loss += gan.drift_weight * drift
    metrics["critic/drift"] = drift
  metrics["critic/loss"] = loss
  return loss, (metrics, stats)


def generator_objective(gan: GAN, generator_params: Any,
                        generator_batch_stats: Any, critic_params: Any,
                        critic_batch_stats: Any,
                        z: Array) -> tuple[Array, Any]:
  """The generator's loss on fresh noise; the critic is a constant here."""
  fake, stats = apply_model(gan.generator, generator_params,
                            generator_batch_stats, z, train=True)
  # Critic batch stats (if any) are not updated by the generator's pass.
  d_fake, _ = apply_model(gan.critic, critic_params, critic_batch_stats, fake,
                          train=True)
  return losses.generator_loss(gan.loss, d_fake), stats


def train_step(gan: GAN, state: TrainState, reals: Array,
               data_sharding: Any = None) -> tuple[TrainState, Metrics]:
  """One generator step: n_critic critic updates then one generator update.

  Args:
    gan: the static GAN.
    state: the current state.
    reals: [n_critic, B, *data_shape] real data, uint8 images (or float toy
      points); critic update i uses reals[i].
    data_sharding: optional sharding of [B, ...] arrays (batch over devices),
      applied to the noise so that all per-sample work is data parallel.

  Returns:
    The new state and scalar metrics (critic metrics averaged over the
    n_critic updates).
  """
  chex.assert_shape(reals, (gan.n_critic, gan.batch_size) + gan.data_shape)
  noise = step_noise(gan, state.step)
  constrain = ((lambda x: x) if data_sharding is None else
               functools.partial(_constrain_batch, sharding=data_sharding))
  reals = prepare_reals(gan, reals, noise.flips)

  def critic_update(carry, inputs):
    params, opt_state, batch_stats, generator_batch_stats = carry
    real, z, eps = inputs
    fake, generator_batch_stats = apply_model(
        gan.generator, state.generator_params, generator_batch_stats,
        constrain(z), train=True)
    fake = jax.lax.stop_gradient(fake)
    grad_fn = jax.value_and_grad(
        functools.partial(critic_objective, gan), has_aux=True)
    (_, (metrics, batch_stats)), grads = grad_fn(
        params, batch_stats, constrain(real), fake, constrain(eps))
    updates, opt_state = gan.critic_tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics["critic/grad_norm"] = optax.tree.norm(grads)
    return (params, opt_state, batch_stats, generator_batch_stats), metrics

  carry = (state.critic_params, state.critic_opt_state,
           state.critic_batch_stats, state.generator_batch_stats)
  # XLA:CPU runs a rolled while-loop whose body holds convolutions ~13x slower
  # than the same body unrolled (jax-ml/jax#12868): unroll there. Elsewhere a
  # rolled scan compiles once per body and runs as fast.
  carry, critic_metrics = jax.lax.scan(
      critic_update, carry, (reals, noise.critic_z, noise.eps),
      unroll=gan.n_critic if gan.unroll_critic else 1)
  critic_params, critic_opt_state, critic_batch_stats, generator_batch_stats = carry

  grad_fn = jax.value_and_grad(
      functools.partial(generator_objective, gan), has_aux=True)
  (generator_loss, generator_batch_stats), grads = grad_fn(
      state.generator_params, generator_batch_stats, critic_params,
      critic_batch_stats, constrain(noise.generator_z))
  updates, generator_opt_state = gan.generator_tx.update(
      grads, state.generator_opt_state, state.generator_params)
  generator_params = optax.apply_updates(state.generator_params, updates)

  metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()}
  metrics["generator/loss"] = generator_loss
  metrics["generator/grad_norm"] = optax.tree.norm(grads)
  new_state = TrainState(
      step=state.step + 1,
      generator_params=generator_params,
      generator_batch_stats=generator_batch_stats,
      critic_params=critic_params,
      critic_batch_stats=critic_batch_stats,
      generator_opt_state=generator_opt_state,
      critic_opt_state=critic_opt_state,
  )
  return new_state, metrics


def train_step_on_device_data(gan: GAN, state: TrainState, examples: Array,
                              indices: Array, data_sharding: Any = None
                              ) -> tuple[TrainState, Metrics]:
  """`train_step` on examples[indices], gathered inside the compiled step.

  Args:
    examples: the whole dataset [N, *data_shape], resident on every device.
    indices: int32 [n_critic, B] (input_pipeline.batch_indices), split over
      devices along B, so each device gathers only its own examples.
  """
  reals = jnp.take(examples, indices, axis=0)
  return train_step(gan, state, reals, data_sharding)


def _constrain_batch(x: Array, sharding: Any) -> Array:
  return jax.lax.with_sharding_constraint(x, sharding)


def make_train_step(
    gan: GAN, mesh: Mesh,
    step_fn: Callable[..., tuple[TrainState, Metrics]] = train_step,
) -> Callable[..., tuple[TrainState, Metrics]]:
  """`step_fn` jitted for `mesh`: state replicated and donated, batches split over devices.

  With `train_step` the call is step(state, reals [n_critic, B, ...]); with
  `train_step_on_device_data` it is step(state, examples [N, ...] replicated,
  indices [n_critic, B]). `step_fn` may also be a wrapper (tests count traces).
  """
  parallel.check_batch_size(gan.batch_size, mesh)
  replicated = parallel.replicated(mesh)
  batch = parallel.batch_sharded(mesh, 1)
  inputs = ((replicated, batch) if _unwrapped(step_fn) is train_step_on_device_data
            else (batch,))
  return jax.jit(
      functools.partial(step_fn, gan,
                        data_sharding=parallel.batch_sharded(mesh, 0)),
      in_shardings=(replicated,) + inputs,
      out_shardings=(replicated, replicated),
      donate_argnums=0)


def _unwrapped(fn: Callable[..., Any]) -> Callable[..., Any]:
  while hasattr(fn, "__wrapped__"):
    fn = fn.__wrapped__
  return fn


def init_state_on_mesh(gan: GAN, mesh: Mesh) -> TrainState:
  """`create_train_state`, compiled and placed replicated on `mesh`."""
  return jax.jit(functools.partial(create_train_state, gan),
                 out_shardings=parallel.replicated(mesh))()
