"""The compiled GAN train step: n_critic critic updates, then one generator update.

One jitted call per generator step. The critic updates run inside the call
(`lax.scan`, unrolled on CPU), each on its own real batch, noise and
interpolation weights. All randomness derives from (config.seed, step), so a
resumed run replays exactly the same numbers.

Class-conditional GANs (num_classes > 0) read the batch's labels: the
critic scores real images with their labels and fakes with the labels they
were generated for; the gradient penalty is taken at interpolates paired
with the labels of their real images; a critic with an auxiliary classifier
adds the classifier's cross-entropy to both players' losses.
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

from wgan_jax import augment
from wgan_jax import conditioning
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
# fold_in constant of the labels of generated images, within a step's key
# (a separate stream: the other draws of a step stay as they were).
LABEL_STREAM = 7
# fold_in constant of the augmentation (config.augment) within a step's key.
AUGMENT_STREAM = 8
FAKE_LABEL_MODES = ("uniform", "data")


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

  @property
  def has_ema(self) -> bool:
    """Whether the optimizer state keeps a moving average of the params (config.ema)."""
    return optimizers.ema_params(self.opt_state) is not None

  def sampling_variables(self, ema: bool = True) -> dict[str, Any]:
    """Variables to sample with: the moving average of the params if kept
    (and `ema`), else the params; the batch statistics are the network's own."""
    average = optimizers.ema_params(self.opt_state) if ema else None
    if average is None:
      return self.variables
    return dict(self.variables, params=average)


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
  # Class-conditional runs (config.conditional); unused when num_classes = 0.
  critic_classifier: bool = False  # the critic has an AC head
  fake_labels: str = "uniform"  # FAKE_LABEL_MODES
  class_frequencies: tuple[float, ...] = ()  # of the data, for 'data'
  ac_weight: float = 0.0
  ac_generator_weight: float = 0.0
  ac_classify_fakes: bool = False
  # DiffAugment of every critic input (config.augment.policy); () = off.
  augment_policy: tuple[str, ...] = ()


def create_gan(config: ml_collections.ConfigDict,
               data_shape: tuple[int, ...],
               class_frequencies: tuple[float, ...] = ()) -> GAN:
  """The static GAN for a (validated) config and per-example data shape.

  Args:
    class_frequencies: the data's class frequencies [num_classes]
      (data.class_frequencies); needed to train with
      config.conditional.fake_labels='data'.
  """
  generator, critic = models.create_models(config.model, data_shape)
  _, critic_method = conditioning.methods(config.model)
  classifier = conditioning.CRITIC_METHODS[critic_method].classifier
  cond = config.conditional
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
          opt, opt.generator_learning_rate, config.num_train_steps,
          ema=config.ema),
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
      critic_classifier=classifier,
      fake_labels=cond.fake_labels,
      class_frequencies=tuple(float(f) for f in class_frequencies),
      ac_weight=cond.ac_weight if classifier else 0.0,
      ac_generator_weight=cond.ac_generator_weight if classifier else 0.0,
      ac_classify_fakes=bool(cond.ac_classify_fakes) and classifier,
      augment_policy=augment.parse_policy(config.augment.policy),
  )


def _example_labels(gan: GAN) -> Array | None:
  """Labels of a 1-example batch for init: None for unconditional GANs."""
  return jnp.zeros((1,), jnp.int32) if gan.num_classes else None


def _init_net(module: nn.Module, tx: optax.GradientTransformation, key: Array,
              example: Array, labels: Array | None) -> NetState:
  variables = models.init_variables(module, key, example, labels)
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
                          jnp.zeros((1, gan.z_dim), jnp.float32),
                          _example_labels(gan)),
      critic=_init_net(gan.critic, gan.critic_tx, critic_key,
                       jnp.zeros((1,) + gan.data_shape, jnp.float32),
                       _example_labels(gan)),
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
  # int32 labels of the fakes (zeros when unconditional); with
  # fake_labels='data' the critic's fakes take the real batch's instead.
  critic_labels: Array  # [n_critic, B]
  generator_labels: Array  # [B]
  # Keys of the augmentation (config.augment): per critic update, and of the
  # generator update.
  critic_augment: Array  # key [n_critic]
  generator_augment: Array  # key []


def sample_labels(gan: GAN, key: Array, shape: tuple[int, ...]) -> Array:
  """int32 labels of generated images: uniform, or with the data's frequencies."""
  if gan.fake_labels == "data":
    if len(gan.class_frequencies) != gan.num_classes:
      raise ValueError("fake_labels='data' needs the data's class "
                       "frequencies: create_gan(..., class_frequencies=...).")
    logits = jnp.log(jnp.asarray(gan.class_frequencies, jnp.float32))
    return jax.random.categorical(key, logits, shape=shape).astype(jnp.int32)
  return jax.random.randint(key, shape, 0, gan.num_classes, jnp.int32)


def step_noise(gan: GAN, step: Array) -> StepNoise:
  """Noise for generator step `step`: key = fold_in(train key, step), split by purpose."""
  key = jax.random.fold_in(
      jax.random.fold_in(jax.random.key(gan.seed), TRAIN_STREAM), step)
  z_key, eps_key, flip_key, generator_key = jax.random.split(key, 4)
  shape = (gan.n_critic, gan.batch_size)
  flips = (jax.random.bernoulli(flip_key, 0.5, shape) if gan.random_flip
           else jnp.zeros(shape, bool))
  if gan.num_classes:
    critic_label_key, generator_label_key = jax.random.split(
        jax.random.fold_in(key, LABEL_STREAM))
    critic_labels = sample_labels(gan, critic_label_key, shape)
    generator_labels = sample_labels(gan, generator_label_key,
                                     (gan.batch_size,))
  else:
    critic_labels = jnp.zeros(shape, jnp.int32)
    generator_labels = jnp.zeros((gan.batch_size,), jnp.int32)
  augment_keys = jax.random.split(jax.random.fold_in(key, AUGMENT_STREAM),
                                  gan.n_critic + 1)
  return StepNoise(
      critic_z=jax.random.normal(z_key, shape + (gan.z_dim,)),
      eps=jax.random.uniform(eps_key, shape),
      flips=flips,
      generator_z=jax.random.normal(generator_key, (gan.batch_size, gan.z_dim)),
      critic_labels=critic_labels,
      generator_labels=generator_labels,
      critic_augment=augment_keys[:-1],
      generator_augment=augment_keys[-1],
  )


def augment_images(gan: GAN, key: Array, x: Array) -> Array:
  """DiffAugment of critic inputs x [B, ...] (identity if config.augment is off)."""
  if not gan.augment_policy:
    return x
  low, high = transforms.IMAGE_RANGES[gan.output_activation]
  return augment.diff_augment(key, x, gan.augment_policy, low, high)


def prepare_reals(gan: GAN, reals: Array, flips: Array) -> Array:
  """uint8 images (or float points) [..., B, *data_shape] -> the generator's range, flipped."""
  x = transforms.to_model_range(reals, gan.output_activation)
  if gan.random_flip:
    x = transforms.flip_horizontally(x, flips)
  return x


def critic_objective(gan: GAN, critic_params: Any, critic_batch_stats: Any,
                     real: Array, fake: Array, eps: Array,
                     real_labels: Array | None = None,
                     fake_labels: Array | None = None
                     ) -> tuple[Array, tuple[Metrics, Any]]:
  """The critic's loss on one batch, with its metrics and new batch stats.

  Args:
    real, fake: [B, *data_shape] in the model's range (fake detached).
    eps: [B] interpolation weights of the gradient penalty.
    real_labels, fake_labels: int32 [B] (class-conditional GANs), else None.
  """
  real_out, stats = apply_model(gan.critic, critic_params, critic_batch_stats,
                                real, train=True, labels=real_labels)
  fake_out, stats = apply_model(gan.critic, critic_params, stats, fake,
                                train=True, labels=fake_labels)
  d_real, real_logits = conditioning.split_critic_output(real_out)
  d_fake, fake_logits = conditioning.split_critic_output(fake_out)
  loss = gan.loss.critic(d_real, d_fake)
  metrics = {
      "critic/real": jnp.mean(d_real),
      "critic/fake": jnp.mean(d_fake),
      "critic/wasserstein": losses.wasserstein_estimate(d_real, d_fake),
  }
  if gan.gp_weight:
    # A gradient-penalty critic has no batch statistics (config validation).
    # Interpolates are scored with the labels of their real images.
    critic_fn = lambda x: conditioning.critic_scores(  # noqa: E731
        gan.critic.apply({"params": critic_params}, x, real_labels))
    penalty, norms = losses.gradient_penalty(critic_fn, real, fake, eps,
                                             gan.loss.penalty)
    loss += gan.gp_weight * penalty
    metrics["critic/gradient_penalty"] = penalty
    metrics["critic/input_grad_norm"] = jnp.mean(norms)
  if gan.drift_weight:
    drift = losses.drift_penalty(d_real)
    loss += gan.drift_weight * drift
    metrics["critic/drift"] = drift
  if real_logits is not None:
    # The classifier learns the classes from real images (and, if asked,
    # from fakes), as improved_wgan_training's ACGAN_SCALE term.
    classification = losses.class_cross_entropy(real_logits, real_labels)
    metrics["critic/class_accuracy_real"] = _accuracy(real_logits, real_labels)
    metrics["critic/class_accuracy_fake"] = _accuracy(fake_logits, fake_labels)
    if gan.ac_classify_fakes:
      classification += losses.class_cross_entropy(fake_logits, fake_labels)
    loss += gan.ac_weight * classification
    metrics["critic/classifier_loss"] = classification
  metrics["critic/loss"] = loss
  return loss, (metrics, stats)


def _accuracy(logits: Array, labels: Array) -> Array:
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def generator_objective(gan: GAN, generator_params: Any,
                        generator_batch_stats: Any, critic: NetState,
                        z: Array, labels: Array | None = None,
                        augment_key: Array | None = None
                        ) -> tuple[Array, tuple[Metrics, Any]]:
  """The generator's loss on fresh noise (and labels); the critic is a constant here.

  With config.augment, the critic scores augmented fakes (augment_key) and
  the gradient flows through the augmentation.

  Returns (loss, (metrics, new generator batch stats)).
  """
  fake, stats = apply_model(gan.generator, generator_params,
                            generator_batch_stats, z, train=True,
                            labels=labels)
  if augment_key is not None:
    fake = augment_images(gan, augment_key, fake)
  # Critic batch stats (if any) are not updated by the generator's pass.
  out, _ = apply_model(gan.critic, critic.params, critic.batch_stats, fake,
                       train=True, labels=labels)
  d_fake, logits = conditioning.split_critic_output(out)
  loss = gan.loss.generator(d_fake)
  metrics = {}
  if logits is not None:
    # Its images should be classified as the class they were made for.
    classification = losses.class_cross_entropy(logits, labels)
    loss += gan.ac_generator_weight * classification
    metrics["generator/classifier_loss"] = classification
  return loss, (metrics, stats)


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
  conditional = gan.num_classes > 0
  if conditional:
    real_labels = batch["label"]
    chex.assert_shape(real_labels, (gan.n_critic, gan.batch_size))
    critic_fake_labels = (real_labels if gan.fake_labels == "data"
                          else noise.critic_labels)
  else:
    real_labels = critic_fake_labels = noise.critic_labels  # zeros, unused
  maybe = lambda labels: constrain(labels) if conditional else None  # noqa: E731

  def critic_update(carry, inputs):
    critic, generator_batch_stats = carry
    real, z, eps, real_y, fake_y, augment_key = inputs
    fake, generator_batch_stats = apply_model(
        gan.generator, generator.params, generator_batch_stats,
        constrain(z), train=True, labels=maybe(fake_y))
    fake = jax.lax.stop_gradient(fake)
    # DiffAugment: real and fake each with their own transforms; the penalty
    # then interpolates between the augmented images.
    real_key, fake_key = jax.random.split(augment_key)
    real = augment_images(gan, real_key, constrain(real))
    fake = augment_images(gan, fake_key, fake)
    grad_fn = jax.value_and_grad(
        functools.partial(critic_objective, gan), has_aux=True)
    (_, (metrics, batch_stats)), grads = grad_fn(
        critic.params, critic.batch_stats, constrain(real), fake,
        constrain(eps), maybe(real_y), maybe(fake_y))
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
      (reals, noise.critic_z, noise.eps, real_labels, critic_fake_labels,
       noise.critic_augment),
      unroll=gan.n_critic if gan.unroll_critic else 1)

  grad_fn = jax.value_and_grad(
      functools.partial(generator_objective, gan), has_aux=True)
  (generator_loss, (generator_metrics, generator_batch_stats)), grads = grad_fn(
      generator.params, generator_batch_stats, critic,
      constrain(noise.generator_z), maybe(noise.generator_labels),
      noise.generator_augment)
  updates, generator_opt_state = gan.generator_tx.update(
      grads, generator.opt_state, generator.params)
  generator = NetState(params=optax.apply_updates(generator.params, updates),
                       batch_stats=generator_batch_stats,
                       opt_state=generator_opt_state)

  metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()}
  metrics.update(generator_metrics)
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


def compile_once(lowered: jax.stages.Lowered) -> jax.stages.Compiled:
  """Compiles a computation that runs once, such as the initializers.

  On XLA:CPU, LLVM's -O1 compiles the initializers 2-4x faster than the
  default -O3 (dcgan64: 7.5 s -> 3.3 s) with bitwise the same state
  (tests/test_train_step.py): optimizing code that runs once costs more
  than it saves.
  """
  options = ({"xla_backend_optimization_level": 1}
             if jax.default_backend() == "cpu" else None)
  return lowered.compile(compiler_options=options)


def init_state_on_mesh(gan: GAN, mesh: Mesh) -> TrainState:
  """`create_train_state`, compiled and placed replicated on `mesh`."""
  return compile_once(jax.jit(functools.partial(create_train_state, gan),
                              out_shardings=parallel.replicated(mesh)).lower())()
