"""Loading a trained generator (or critic) and sampling from it.

    from wgan_jax import sampling
    generator = sampling.load_generator("/tmp/run")          # latest checkpoint
    z = sampling.noise(generator, 16, seed=0)                # [16, z_dim]
    images = sampling.sample(generator, z)                   # uint8 [16, H, W, C]
    images = sampling.sample(generator, z, labels=3)         # class-conditional runs

A run with an EMA of the generator (config.ema) loads the average by
default, with batch statistics of its own (`with_standing_stats`);
`load_generator(..., ema=False)` loads the raw weights.

Only the generator's arrays are read from the checkpoint; the data, the
critic and the optimizer states are not needed. `load_critic` does the same
for the critic (`critic_values` scores examples with it).

Pure helpers for walks through z space: `latent_sweep` (two components on a
grid of offsets) and `interpolate` (linear or spherical paths).
"""

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from wgan_jax import checkpointing
from wgan_jax import conditioning
from wgan_jax import models
from wgan_jax import optimizers
from wgan_jax import parallel
from wgan_jax.data import transforms
from wgan_jax.errors import UserError

# fold_in constant of the fixed noise behind the training sample grids
# (train_step uses 0 for init and 1 for training).
SAMPLE_STREAM = 2
# fold_in constant of the noise behind the standing batch statistics of an
# EMA generator (config.ema.standing_batches), then folded with the step.
STANDING_STREAM = 4
# Below this sin(angle) the endpoints of `interpolate` count as parallel and
# the spherical path falls back to the linear one (sin(angle) divides).
_SLERP_PARALLEL_SIN = 1e-6
INTERPOLATION_METHODS = ("linear", "spherical")


class IncompatibleCheckpointError(UserError, ValueError):
  """A checkpoint's arrays do not fit the current model code."""


class LabelError(UserError, ValueError):
  """Labels that the network cannot take (none, missing, out of range)."""


@dataclasses.dataclass(frozen=True)
class Generator:
  """A trained generator, ready to sample."""
  module: nn.Module
  variables: dict[str, Any]  # {'params': ..., 'batch_stats': ...}
  config: ml_collections.ConfigDict
  data_shape: tuple[int, ...]  # per example: (H, W, C) or (D,)
  step: int
  class_names: tuple[str, ...] = ()
  ema: bool = False  # the variables are the moving average of the weights

  @property
  def z_dim(self) -> int:
    return self.config.model.z_dim

  @property
  def output_activation(self) -> str:
    return self.config.model.output_activation

  @property
  def num_classes(self) -> int:
    """0 for an unconditional generator."""
    return self.config.model.num_classes


@dataclasses.dataclass(frozen=True)
class Critic:
  """A trained critic: examples [N, *data_shape] -> unbounded scores [N]."""
  module: nn.Module
  variables: dict[str, Any]  # {'params': ..., 'batch_stats': ...?}
  config: ml_collections.ConfigDict
  data_shape: tuple[int, ...]  # per example: (H, W, C) or (D,)
  step: int


def fixed_noise(seed: int, num: int, z_dim: int) -> jax.Array:
  """The run's fixed sample noise [num, z_dim]: the same at every step and on resume."""
  key = jax.random.fold_in(jax.random.key(seed), SAMPLE_STREAM)
  return jax.random.normal(key, (num, z_dim))


def noise(generator: Generator, num: int, seed: int = 0,
          truncation: float | None = None) -> jax.Array:
  """z [num, z_dim] from an explicit seed: standard normal, or truncated.

  Args:
    generator: gives z_dim.
    num: number of vectors.
    seed: the draw is a pure function of (seed, num, z_dim, truncation).
    truncation: if set, every component is drawn from the standard normal
      restricted to [-truncation, truncation] (the truncation trick: less
      variety, typical-looking samples).
  """
  key = jax.random.key(seed)
  shape = (num, generator.z_dim)
  if truncation is None:
    return jax.random.normal(key, shape)
  if not truncation > 0:
    raise ValueError(f"truncation must be > 0, got {truncation}.")
  return jax.random.truncated_normal(key, -truncation, truncation, shape)


def with_standing_stats(generator: nn.Module, variables: dict[str, Any],
                        config: ml_collections.ConfigDict,
                        step: int) -> dict[str, Any]:
  """An EMA generator's `variables` with the batch statistics of its own params.

  models.standing_batch_stats over config.ema.standing_batches batches of
  config.batch_size (the batch that training normalizes over) of
  z ~ N(0, I) and, for a conditional generator, uniform labels, drawn from
  fold_in(fold_in(key(config.seed), STANDING_STREAM), step): the samples and
  evaluations of a step during training and those of its checkpoint agree.
  Unchanged for standing_batches 0 or a generator without batch norm. Runs
  on this process's default device, so it needs no other process.
  """
  num_batches = config.ema.standing_batches
  if not num_batches or not variables.get("batch_stats"):
    return variables
  key = jax.random.fold_in(
      jax.random.fold_in(jax.random.key(config.seed), STANDING_STREAM), step)
  z_key, label_key = jax.random.split(key)
  shape = (num_batches, config.batch_size)
  z = jax.random.normal(z_key, shape + (config.model.z_dim,))
  num_classes = config.model.num_classes
  labels = (jax.random.randint(label_key, shape, 0, num_classes)
            if num_classes else None)
  variables = parallel.to_host(variables)
  stats = models.standing_batch_stats(generator, variables, z, labels)
  return dict(variables, batch_stats=parallel.to_host(stats))


def state_variables(generator: nn.Module, state: Any,
                    config: ml_collections.ConfigDict,
                    step: int) -> dict[str, Any]:
  """The variables to sample with from a generator's train_step.NetState.

  The moving average of the weights with its standing statistics
  (`with_standing_stats`) if the run keeps one, else the raw variables; as
  numpy arrays.
  """
  variables = parallel.to_host(state.sampling_variables())
  if state.has_ema:
    variables = with_standing_stats(generator, variables, config, step)
  return variables


def latent_sweep(z: Any, dims: Sequence[int], offsets: Any) -> np.ndarray:
  """Copies of z with two components moved on a grid of offsets.

  Args:
    z: float [z_dim], the vector to sweep around.
    dims: (i, j), two distinct components of z.
    offsets: float [K] added to the components; where an offset is 0 the
      component keeps its value, so with 0 at the middle the middle cell is z.

  Returns:
    float32 [K, K, z_dim]: out[r, c] = z with z[i] + offsets[r] and
    z[j] + offsets[c].
  """
  z = np.asarray(z, np.float32)
  offsets = np.asarray(offsets, np.float32)
  if z.ndim != 1 or offsets.ndim != 1:
    raise ValueError(f"latent_sweep needs z [z_dim] and offsets [K], got "
                     f"{z.shape} and {offsets.shape}.")
  if len(dims) != 2 or dims[0] == dims[1] or not all(
      0 <= d < z.shape[0] for d in dims):
    raise ValueError(f"dims must be two different components in [0, "
                     f"{z.shape[0]}) (z_dim {z.shape[0]}), got {tuple(dims)}.")
  i, j = dims
  out = np.broadcast_to(z, (len(offsets), len(offsets), z.shape[0])).copy()
  out[:, :, i] += offsets[:, None]
  out[:, :, j] += offsets[None, :]
  return out


def interpolate(z_a: Any, z_b: Any, num: int,
                method: str = "linear") -> np.ndarray:
  """`num` points from z_a to z_b, both endpoints included exactly.

  Args:
    z_a, z_b: float [..., z_dim], broadcastable.
    num: points per path (>= 2).
    method: 'linear' (straight line), or 'spherical' (slerp: along the great
      circle, norm interpolated linearly in angle; for equal-norm endpoints
      every point keeps that norm). Near-parallel endpoints, where slerp's
      sin(angle) denominator vanishes, take the linear path.

  Returns:
    float32 [..., num, z_dim]; [..., 0, :] is z_a and [..., -1, :] is z_b.
  """
  if method not in INTERPOLATION_METHODS:
    raise ValueError(f"Unknown interpolation method {method!r}; use one of "
                     f"{INTERPOLATION_METHODS}.")
  if num < 2:
    raise ValueError(f"interpolate needs num >= 2 (both endpoints), got {num}.")
  # float64 so that the weights at t = 0 and t = 1 are exactly 1 and 0.
  a = np.asarray(z_a, np.float64)[..., None, :]
  b = np.asarray(z_b, np.float64)[..., None, :]
  t = np.linspace(0.0, 1.0, num)[:, None]
  w_a, w_b = 1.0 - t, t
  if method == "spherical":
    norms = np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(
        b, axis=-1, keepdims=True)
    cos = np.sum(a * b, axis=-1, keepdims=True) / np.maximum(norms, 1e-30)
    angle = np.arccos(np.clip(cos, -1.0, 1.0))
    sin = np.sin(angle)
    parallel = np.abs(sin) < _SLERP_PARALLEL_SIN
    safe_sin = np.where(parallel, 1.0, sin)
    w_a = np.where(parallel, w_a, np.sin((1.0 - t) * angle) / safe_sin)
    w_b = np.where(parallel, w_b, np.sin(t * angle) / safe_sin)
  return (w_a * a + w_b * b).astype(np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _apply_eval(module: nn.Module, variables: dict[str, Any], x: jax.Array,
                labels: jax.Array | None) -> Any:
  return module.apply(variables, x, labels, train=False)


def _apply_batched(module: nn.Module, variables: dict[str, Any], x: Any,
                   batch_size: int, labels: Any = None) -> Any:
  """Eval-mode module outputs for x [N, ...] (and labels [N]), `batch_size` rows at a time.

  A tuple output (a critic with a class head) comes back as a tuple of arrays.
  """
  x = jnp.asarray(x, jnp.float32)
  labels = None if labels is None else jnp.asarray(labels, jnp.int32)
  out = [jax.device_get(_apply_eval(
      module, variables, x[i:i + batch_size],
      None if labels is None else labels[i:i + batch_size]))
         for i in range(0, x.shape[0], batch_size)]
  if not out:
    return np.zeros((0,), np.float32)
  return jax.tree.map(lambda *parts: np.concatenate(parts), *out)


def generate(module: nn.Module, variables: dict[str, Any], z: jax.Array,
             labels: Any = None, batch_size: int = 256) -> np.ndarray:
  """Generator outputs in the model's range (eval mode: running BN averages).

  Args:
    z: float [N, z_dim].
    labels: int [N] classes for a class-conditional generator, else None.
    batch_size: rows per call, so any number of samples fits in memory.

  Returns float32 [N, *data_shape].
  """
  return _apply_batched(module, variables, z, batch_size, labels)


def check_labels(num_classes: int, labels: Any, num: int) -> np.ndarray | None:
  """Labels int32 [num] in [0, num_classes) for a conditional network, None otherwise.

  Raises LabelError for labels given to an unconditional network, missing
  labels for a conditional one, or a class out of range.
  """
  if not num_classes:
    if labels is not None:
      raise LabelError("This generator is unconditional (trained without "
                      "class labels): it takes no labels.")
    return None
  if labels is None:
    raise LabelError(f"This generator is class-conditional ({num_classes} "
                    "classes): give a label per sample.")
  labels = np.broadcast_to(np.asarray(labels), (num,)).astype(np.int32)
  bad = labels[(labels < 0) | (labels >= num_classes)]
  if len(bad):
    raise LabelError(f"label {int(bad[0])} is not a class of this generator: "
                    f"use 0 .. {num_classes - 1}.")
  return labels


def class_rows(z: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray, int]:
  """Inputs of a grid with one row per class, the same noise down each column.

  Args:
    z: float [C, z_dim], the noise of the C columns.
    num_classes: K > 0.

  Returns:
    (z' float32 [K * C, z_dim], labels int32 [K * C], C): row k is class k,
    column c holds z[c] in every row.
  """
  z = np.asarray(z, np.float32)
  labels = np.repeat(np.arange(num_classes, dtype=np.int32), len(z))
  return np.tile(z, (num_classes, 1)), labels, len(z)


def sample(generator: Generator, z: jax.Array,
           labels: Any = None) -> np.ndarray:
  """Samples for noise z [N, z_dim]: uint8 [N, H, W, C] images, or float32 points [N, D].

  Args:
    labels: for a class-conditional generator, the class of each sample:
      int [N], or one int for all; must be None for an unconditional one.
  """
  z = jnp.asarray(z)
  if z.ndim != 2 or z.shape[1] != generator.z_dim:
    raise ValueError(f"z must have shape [N, {generator.z_dim}], got {z.shape}.")
  labels = check_labels(generator.num_classes, labels, z.shape[0])
  out = generate(generator.module, generator.variables, z, labels)
  if len(generator.data_shape) != 3:
    return out
  return transforms.to_uint8(out, generator.output_activation)


def critic_values(critic: Critic, x: Any, labels: Any = None,
                  batch_size: int = 4096) -> np.ndarray:
  """Critic scores float32 [N] of examples x [N, *data_shape] in model range.

  `labels` (int [N]) is for a class-conditional critic.
  """
  x = jnp.asarray(x)
  if x.shape[1:] != critic.data_shape:
    raise ValueError(f"x must have shape [N, *{critic.data_shape}], got "
                     f"{x.shape}.")
  labels = check_labels(getattr(critic.module, "num_classes", 0), labels,
                        x.shape[0])
  return conditioning.critic_scores(
      _apply_batched(critic.module, critic.variables, x, batch_size, labels))


def _load_network(workdir: str, step: int | None, network: str,
                  ema: bool = False):
  """(module, variables, config, data_shape, step, meta) of one saved network.

  Args:
    network: 'generator' or 'critic': only that network's params and batch
      stats are read.
    ema: the generator's moving average of the params (config.ema) instead
      of the params; its optimizer state, which holds it, is read too.
  """
  step = checkpointing.resolve_step(workdir, step)
  meta = checkpointing.read_meta(workdir, step)
  config = checkpointing.config_from_meta(meta)
  data_shape = tuple(meta["data_shape"])
  generator, critic = models.create_models(config.model, data_shape)
  module, example_shape = {
      "generator": (generator, (1, config.model.z_dim)),
      "critic": (critic, (1,) + data_shape),
  }[network]
  example = jax.ShapeDtypeStruct(example_shape, jnp.float32)
  labels = (jax.ShapeDtypeStruct((1,), jnp.int32)
            if config.model.num_classes else None)
  abstract = jax.eval_shape(
      functools.partial(models.init_variables, module), jax.random.key(0),
      example, labels)
  target = {"params": abstract["params"],
            "batch_stats": abstract.get("batch_stats", {})}
  if ema:
    tx = optimizers.make_optimizer(
        config.optimizer, config.optimizer.generator_learning_rate,
        config.num_train_steps, ema=config.ema)
    target["opt_state"] = jax.eval_shape(tx.init, abstract["params"])
  restored = checkpointing.restore_network(workdir, network, target, step)
  # A partial restore leaves the abstract leaves that the checkpoint lacks.
  missing = [jax.tree_util.keystr(path) for path, leaf in
             jax.tree_util.tree_leaves_with_path(restored)
             if isinstance(leaf, jax.ShapeDtypeStruct)]
  if missing:
    raise IncompatibleCheckpointError(
        f"Checkpoint {step} of {workdir} has no arrays for {len(missing)} "
        f"{network} variables (e.g. {missing[0]}): it was saved by a version "
        "of models.py with other layer names. Load it with that version.")
  variables = {"params": (optimizers.ema_params(restored["opt_state"]) if ema
                         else restored["params"])}
  if restored["batch_stats"]:
    variables["batch_stats"] = restored["batch_stats"]
  return module, variables, config, data_shape, step, meta


def load_generator(workdir: str, step: int | None = None,
                   ema: bool | None = None) -> Generator:
  """The generator of a run's checkpoint `step` (default: the latest).

  Args:
    ema: use the moving average of its weights (config.ema); None: if the
      run keeps one. True for a run without one is an error.
  """
  meta_config = checkpointing.config_from_meta(
      checkpointing.read_meta(workdir, step))
  has_ema = meta_config.ema.decay > 0
  if ema and not has_ema:
    raise UserError(f"{workdir} was trained without an EMA of the generator "
                    "(config.ema.decay=0): load its raw weights (ema=False).")
  ema = has_ema if ema is None else ema
  module, variables, config, data_shape, step, meta = _load_network(
      workdir, step, "generator", ema)
  if ema:
    variables = with_standing_stats(module, variables, config, step)
  return Generator(module=module, variables=variables, config=config,
                   data_shape=data_shape, step=step, ema=ema,
                   class_names=tuple(meta.get("class_names", ())))


def load_critic(workdir: str, step: int | None = None) -> Critic:
  """The critic of a run's checkpoint `step` (default: the latest)."""
  module, variables, config, data_shape, step, _ = _load_network(
      workdir, step, "critic")
  return Critic(module=module, variables=variables, config=config,
                data_shape=data_shape, step=step)
