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

from wgan_jax import losses
from wgan_jax import models
from wgan_jax import optimizers
from wgan_jax import parallel
from wgan_jax import validation
from wgan_jax.data import transforms

Array = jax.Array
Metrics = dict[str, Array]
# {'image': [..., B, *data_shape], 'label': int32 [..., B] (labelled sources)}.
Batch = dict[str, Array]

# fold_in constants that separate the random streams of one seed.
INIT_STREAM = 0
TRAIN_STREAM = 1


@flax.struct.dataclass
class NetState:
  """One network's part of the train state; a pytree of arrays."""
  params: Any
  batch_stats: Any  # {} when the network has no batch norm
  opt_state: optax.OptState

  @property
  def variables(self) -> dict[str, Any]:
    """Flax variables for `module.apply`: params, and batch_stats if any."""
    if self.batch_stats:
      return {"params": self.params, "batch_stats": self.batch_stats}
    return {"params": self.params}


# The TrainState fields that are a NetState.
NETWORKS = ("generator", "critic")


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree of arrays."""
  step: Array  # int32 [], generator steps done
  generator: NetState
  critic: NetState


@dataclasses.dataclass(frozen=True)
class GAN:
  """Everything static about a run: networks, optimizers, objective, sizes."""
  generator: nn.Module
  critic: nn.Module
  generator_tx: optax.GradientTransformation
  critic_tx: optax.GradientTransformation
  loss: losses.Loss
  gp_weight: float
  drift_weight: float
  z_dim: int
  num_classes: int  # 0: unconditional
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
  loss = losses.get(config.loss)
  clip = config.clip_value if loss.weight_clipping else None
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
      loss=loss,
      gp_weight=config.gp_weight if loss.penalty else 0.0,
      drift_weight=config.drift_weight,
      z_dim=config.model.z_dim,
      num_classes=config.model.num_classes,
      data_shape=tuple(data_shape),
      batch_size=config.batch_size,
      n_critic=config.n_critic,
      seed=config.seed,
      output_activation=config.model.output_activation,
      random_flip=bool(config.data.random_flip) and len(data_shape) == 3,
      unroll_critic=loop == "unroll",
  )


def _init_net(module: nn.Module, tx: optax.GradientTransformation, key: Array,
              example: Array) -> NetState:
  variables = models.init_variables(module, key, example)
  return NetState(params=variables["params"],
                  batch_stats=variables.get("batch_stats", {}),
                  opt_state=tx.init(variables["params"]))


def create_train_state(gan: GAN) -> TrainState:
  """Initial state: parameters from fold_in(key(seed), INIT_STREAM)."""
  key = jax.random.fold_in(jax.random.key(gan.seed), INIT_STREAM)
  generator_key, critic_key = jax.random.split(key)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      generator=_init_net(gan.generator, gan.generator_tx, generator_key,
                          jnp.zeros((1, gan.z_dim), jnp.float32)),
      critic=_init_net(gan.critic, gan.critic_tx, critic_key,
                       jnp.zeros((1,) + gan.data_shape, jnp.float32)),
  )


def apply_model(module: nn.Module, params: Any, batch_stats: Any, x: Array,
                train: bool, labels: Array | None = None) -> tuple[Array, Any]:
  """module(x, labels) and its batch statistics, updated when `train` (else unchanged)."""
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
    if train:
      out, updates = module.apply(variables, x, labels, train=True,
                                  mutable=["batch_stats"])
      return out, updates["batch_stats"]
  return module.apply(variables, x, labels, train=train), batch_stats


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
  x = transforms.to_model_range(reals, gan.output_activation)
  if gan.random_flip:
    x = transforms.flip_horizontally(x, flips)
  return x


def critic_objective(gan: GAN, critic_params: Any, critic_batch_stats: Any,
                     real: Array, fake: Array,
                     eps: Array) -> tuple[Array, tuple[Metrics, Any]]:
  """The critic's loss on one batch, with its metrics and new batch stats."""
  d_real, stats = apply_model(gan.critic, critic_params, critic_batch_stats,
                              real, train=True)
  d_fake, stats = apply_model(gan.critic, critic_params, stats, fake,
                              train=True)
  loss = gan.loss.critic(d_real, d_fake)
  metrics = {
      "critic/real": jnp.mean(d_real),
      "critic/fake": jnp.mean(d_fake),
      "critic/wasserstein": losses.wasserstein_estimate(d_real, d_fake),
  }
  if gan.gp_weight:
    # A gradient-penalty critic has no batch statistics (config validation).
    critic_fn = lambda x: gan.critic.apply({"params": critic_params}, x)  # noqa: E731
    penalty, norms = losses.gradient_penalty(critic_fn, real, fake, eps,
                                             gan.loss.penalty)
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
                        generator_batch_stats: Any, critic: NetState,
                        z: Array) -> tuple[Array, Any]:
  """The generator's loss on fresh noise; the critic is a constant here."""
  fake, stats = apply_model(gan.generator, generator_params,
                            generator_batch_stats, z, train=True)
  # Critic batch stats (if any) are not updated by the generator's pass.
  d_fake, _ = apply_model(gan.critic, critic.params, critic.batch_stats, fake,
                          train=True)
  return gan.loss.generator(d_fake), stats


def train_step(gan: GAN, state: TrainState, batch: Batch,
               data_sharding: Any = None) -> tuple[TrainState, Metrics]:
  """One generator step: n_critic critic updates then one generator update.

  Args:
    gan: the static GAN.
    state: the current state.
    batch: {'image': [n_critic, B, *data_shape] real data, uint8 images (or
      float toy points), 'label'?: int32 [n_critic, B]}; critic update i uses
      batch[...][i]. Labels are read by class-conditional GANs only.
    data_sharding: optional sharding of [B, ...] arrays (batch over devices),
      applied to the noise so that all per-sample work is data parallel.

  Returns:
    The new state and scalar metrics (critic metrics averaged over the
    n_critic updates).
  """
  reals = batch["image"]
  chex.assert_shape(reals, (gan.n_critic, gan.batch_size) + gan.data_shape)
  noise = step_noise(gan, state.step)
  constrain = ((lambda x: x) if data_sharding is None else
               functools.partial(_constrain_batch, sharding=data_sharding))
  reals = prepare_reals(gan, reals, noise.flips)
  generator = state.generator

  def critic_update(carry, inputs):
    critic, generator_batch_stats = carry
    real, z, eps = inputs
    fake, generator_batch_stats = apply_model(
        gan.generator, generator.params, generator_batch_stats,
        constrain(z), train=True)
    fake = jax.lax.stop_gradient(fake)
    grad_fn = jax.value_and_grad(
        functools.partial(critic_objective, gan), has_aux=True)
    (_, (metrics, batch_stats)), grads = grad_fn(
        critic.params, critic.batch_stats, constrain(real), fake,
        constrain(eps))
    updates, opt_state = gan.critic_tx.update(grads, critic.opt_state,
                                              critic.params)
    critic = NetState(params=optax.apply_updates(critic.params, updates),
                      batch_stats=batch_stats, opt_state=opt_state)
    metrics["critic/grad_norm"] = optax.tree.norm(grads)
    return (critic, generator_batch_stats), metrics

  # XLA:CPU runs a rolled while-loop whose body holds convolutions ~13x slower
  # than the same body unrolled (jax-ml/jax#12868): unroll there. Elsewhere a
  # rolled scan compiles once per body and runs as fast.
  (critic, generator_batch_stats), critic_metrics = jax.lax.scan(
      critic_update, (state.critic, generator.batch_stats),
      (reals, noise.critic_z, noise.eps),
      unroll=gan.n_critic if gan.unroll_critic else 1)

  grad_fn = jax.value_and_grad(
      functools.partial(generator_objective, gan), has_aux=True)
  (generator_loss, generator_batch_stats), grads = grad_fn(
      generator.params, generator_batch_stats, critic,
      constrain(noise.generator_z))
  updates, generator_opt_state = gan.generator_tx.update(
      grads, generator.opt_state, generator.params)
  generator = NetState(params=optax.apply_updates(generator.params, updates),
                       batch_stats=generator_batch_stats,
                       opt_state=generator_opt_state)

  metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()}
  metrics["generator/loss"] = generator_loss
  metrics["generator/grad_norm"] = optax.tree.norm(grads)
  return TrainState(step=state.step + 1, generator=generator,
                    critic=critic), metrics


def train_step_on_device_data(gan: GAN, state: TrainState, arrays: Batch,
                              indices: Array, data_sharding: Any = None
                              ) -> tuple[TrainState, Metrics]:
  """`train_step` on the batch arrays[...][indices], gathered inside the compiled step.

  Args:
    arrays: the whole dataset {'image': [N, *data_shape], 'label'?: [N]},
      resident on every device.
    indices: int32 [n_critic, B] (data.batch_indices), split over devices
      along B, so each device gathers only its own examples.
  """
  batch = jax.tree.map(lambda a: jnp.take(a, indices, axis=0), arrays)
  return train_step(gan, state, batch, data_sharding)


def _constrain_batch(x: Array, sharding: Any) -> Array:
  return jax.lax.with_sharding_constraint(x, sharding)


def make_train_step(
    gan: GAN, mesh: Mesh,
    step_fn: Callable[..., tuple[TrainState, Metrics]] = train_step,
) -> Callable[..., tuple[TrainState, Metrics]]:
  """`step_fn` jitted for `mesh`: state replicated and donated, batches split over devices.

  With `train_step` the call is step(state, batch {'image': [n_critic, B,
  ...], ...}); with `train_step_on_device_data` it is step(state, arrays
  {'image': [N, ...], ...} replicated, indices [n_critic, B]). `step_fn` may also be a wrapper (tests count traces).
  """
  validation.check_batch_size(gan.batch_size, mesh.devices.size)
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
