"""The training loop: data, compiled steps, logs, samples, checkpoints, resume.

Workdir layout:
    WORKDIR/checkpoints/<step>/{state,meta}   Orbax checkpoints (checkpointing.py)
    WORKDIR/samples/step_<step>.png           fixed-noise sample grids
    WORKDIR/metrics.jsonl                     logged scalars (run_logs.py)
    WORKDIR/tensorboard/                      TensorBoard event files
    WORKDIR/data_cache/                       decoded datasets (config.data.cache_dir)
                                              and FID reference features
    WORKDIR/eval/best.json                    best-FID step (config.eval.eval_every)

Running the same command again resumes from the latest checkpoint; the
resumed run is bitwise identical to an uninterrupted one, because the batches
(data_lib.batch_indices) and all noise (train_step.step_noise) are pure
functions of (config.seed, step). Resuming with a config or data that would
change the mathematics is refused (validation.check_resume).

Periodic work after each step is a list of `PeriodicAction`s (metrics and
log, samples, checkpoint, evaluation), each run when `itstime(step, every,
total)`, in that order, so the finiteness checks of the metrics and of the
state come before every save.
"""

import contextlib
import dataclasses
import hashlib
import os
import signal
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from wgan_jax import checkpointing
from wgan_jax import data as data_lib
from wgan_jax import distributed
from wgan_jax import evaluator as evaluator_lib
from wgan_jax import images
from wgan_jax import models
from wgan_jax import parallel
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train_step
from wgan_jax import validation
from wgan_jax.data import transforms


# Largest dataset kept on the devices (config.data.on_device), replicated on
# each: leaves most of a GPU's memory, and of a host's, to the step.
MAX_ON_DEVICE_BYTES = 2 << 30


class NonFiniteLossError(FloatingPointError):
  """A loss, a gradient norm or the train state became NaN or Inf."""


class _Preemption:
  """SIGTERM/SIGINT as a stop after a step, the same step on every process.

  One process: a Python handler sets a flag, read after each step (no
  per-step cost). Several processes must all save the same step, although
  a signal reaches one process (or each at its own moment): JAX's
  preemption service, started by jax.distributed.initialize, catches
  SIGTERM and agrees on the step, and `multihost_utils.
  reached_preemption_sync_point(step)` is True at that step on every
  process (a local check; the agreement runs in the background). SIGINT is
  handed to it as a SIGTERM to this process.
  """

  def __init__(self):
    self.signum = None
    self._previous = {}
    self._multiprocess = jax.process_count() > 1

  def __enter__(self):
    # With several processes SIGTERM stays JAX's (its C++ handler).
    signals = ((signal.SIGINT,) if self._multiprocess else
               (signal.SIGTERM, signal.SIGINT))
    for signum in signals:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: saving a checkpoint, then exiting.",
                    signum)
    self.signum = self.signum or signum
    if self._multiprocess:
      os.kill(os.getpid(), signal.SIGTERM)  # To JAX's preemption service.

  def stop_after(self, step: int) -> bool:
    """Whether to save and exit after `step` steps (call after every step)."""
    if not self._multiprocess:
      return self.signum is not None
    if multihost_utils.reached_preemption_sync_point(step):
      self.signum = self.signum or signal.SIGTERM
      logging.warning("All processes stop after step %d (preemption).", step)
      return True
    return False

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def itstime(step: int, every: int, total: int, last: bool = True) -> bool:
  """Whether work done every `every` steps runs after `step` steps.

  On multiples of `every` (never for every <= 0), and after the last step
  `total` when `last`: as big_vision's `u.itstime`.
  """
  return (every > 0 and step % every == 0) or (last and step == total)


def format_duration(seconds: float) -> str:
  """'1d 02:03:04' / '02:03:04': right past 24 hours (time.strftime is not)."""
  seconds = max(0, int(round(seconds)))
  days, rest = divmod(seconds, 86400)
  text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
  return f"{days}d {text}" if days else text


@dataclasses.dataclass
class PeriodicAction:
  """Work run after step `step` when itstime(step, every, total).

  run(step, state) does it; `on_preemption`: also run after the step at
  which a SIGTERM/SIGINT arrived (metrics and checkpoint are; samples and
  evaluation are not, to save soon).
  """
  name: str
  every: int
  run: Callable[[int, Any], None]
  on_preemption: bool = False


class MetricHistory:
  """Per-step device metrics since the last log, checked for NaN/Inf on demand."""

  def __init__(self, first_step: int):
    self._first = first_step
    self._pending: list[dict[str, jax.Array]] = []
    self._checked: list[dict[str, float]] = []

  def append(self, metrics: dict[str, jax.Array]) -> None:
    self._pending.append(metrics)

  def check(self) -> None:
    """Fetches the pending metrics; raises NonFiniteLossError naming the step."""
    fetched = jax.device_get(self._pending)
    for metrics in fetched:
      step = self._first + len(self._checked) + 1
      bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
      if bad:
        raise NonFiniteLossError(f"Non-finite {', '.join(bad)} at step {step}.")
      self._checked.append(metrics)
    self._pending = []

  def pop_means(self) -> dict[str, float]:
    """Means over the steps since the last call (checked), then starts anew."""
    self.check()
    checked, self._checked = self._checked, []
    self._first += len(checked)
    return {k: float(np.mean([m[k] for m in checked])) for k in checked[0]}


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def check_state(state: train_step.TrainState, step: int) -> None:
  """Raises NonFiniteLossError if any parameter, batch statistic or optimizer
  moment of `state` is NaN or Inf (run before every save)."""
  for net in train_step.NETWORKS:
    if not bool(_all_finite(getattr(state, net))):
      raise NonFiniteLossError(
          f"Non-finite values in the {net}'s state at step {step}; the last "
          "saved checkpoint is the last good one.")


def parameter_overview(state: train_step.TrainState) -> str:
  """Per network: parameter count, and per top-level layer its count."""
  lines = []
  for net in train_step.NETWORKS:
    params = getattr(state, net).params
    stats = getattr(state, net).batch_stats
    lines.append(f"{net}: {models.count_params(params):,} parameters, "
                 f"{models.count_params(stats):,} batch-norm statistics")
    for name, sub in params.items():
      shapes = ", ".join(
          f"{jax.tree_util.keystr(path)}{list(x.shape)}"
          for path, x in jax.tree_util.tree_leaves_with_path(sub))
      lines.append(f"  {name}: {models.count_params(sub):,} ({shapes})")
  return "\n".join(lines)


def _write_samples(workdir: str, writer: run_logs.MetricWriter,
                   config: ml_collections.ConfigDict, gan: train_step.GAN,
                   state: train_step.TrainState, z: jax.Array, step: int,
                   class_names: tuple[str, ...] = ()) -> None:
  """The fixed-noise grid; class-conditional: one row per class, named."""
  labels, columns, row_labels = None, None, None
  if gan.num_classes:
    z, labels, columns = sampling.class_rows(
        z[:max(1, len(z) // gan.num_classes)], gan.num_classes)
    row_labels = list(class_names) or None
  # From this process's copy of the parameters, on its own device: process
  # 0 draws alone, and a computation on arrays that span processes would
  # need all of them.
  variables = sampling.state_variables(gan.generator, state.generator,
                                      config, step)
  out = sampling.generate(gan.generator, variables, z, labels)
  if len(gan.data_shape) != 3:
    return  # 2-D toy points: `generate landscape` draws them
  grid = images.make_grid(transforms.to_uint8(out, gan.output_activation),
                          columns, row_labels)
  images.save_png(run_logs.sample_path(workdir, step), grid)
  writer.write_image(step, "samples", grid)


def dataset_arrays(dataset: data_lib.Dataset) -> dict[str, np.ndarray]:
  """The batch dict's arrays of a whole dataset: 'image', and 'label' if labelled."""
  arrays = {"image": dataset.examples}
  if dataset.labels is not None:
    arrays["label"] = dataset.labels
  return arrays


def data_shard(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(index, count): the part of the dataset this process loads.

  (0, 1), the whole dataset, unless config.data.shard_by_process: then shard
  process_index of process_count.
  """
  if config.data.shard_by_process:
    return jax.process_index(), jax.process_count()
  return 0, 1


def input_feed(config: ml_collections.ConfigDict,
               dataset: data_lib.Dataset, gan: train_step.GAN,
               mesh: jax.sharding.Mesh) -> tuple[Any, Callable[[int], tuple]]:
  """The jitted step and a function from the step to its data inputs.

  Every batch is a pure function of (config.seed, step): the example
  indices are data_lib.batch_indices of the whole dataset, whatever the
  process and device counts. On device (config.data.on_device, one process,
  a dataset that fits): the dataset's arrays are copied to every device once
  and the step gathers its batches itself, so the host does no per-step
  work. Otherwise each process gathers the block of every global batch that
  its devices hold and sends it (jax.make_array_from_process_local_data).

  With config.data.shard_by_process and P > 1 processes, `dataset` is this
  process's shard (data_shard) and its block of each batch is drawn from
  that shard (batch_indices with shard=): the batches differ from a
  1-process run's, their distribution does not.
  """
  arrays = dataset_arrays(dataset)
  nbytes = sum(a.nbytes for a in arrays.values())
  shard = data_shard(config)

  def indices(step: int, batch_size: int = config.batch_size) -> np.ndarray:
    return data_lib.batch_indices(dataset.num_examples, config.seed, step,
                                  config.n_critic, batch_size, shard)

  if (config.data.on_device and jax.process_count() == 1
      and nbytes <= MAX_ON_DEVICE_BYTES):
    logging.info("Dataset on the devices (%.1f MiB); batches gathered in "
                 "the step.", nbytes / 2**20)
    on_device = jax.device_put(arrays, parallel.replicated(mesh))
    step_fn = train_step.make_train_step(
        gan, mesh, step_fn=train_step.train_step_on_device_data)
    return step_fn, lambda step: (on_device, indices(step))
  logging.info("Batches gathered on the host (data.on_device=%s, %d "
               "processes, %.1f MiB%s).", config.data.on_device,
               jax.process_count(), nbytes / 2**20,
               ", this process's shard of the data" if shard[1] > 1 else "")
  validation.check_batch_size(config.batch_size, mesh.devices.size,
                              jax.process_count())
  sharding = parallel.batch_sharded(mesh, 1)
  shape = (config.n_critic, config.batch_size)
  # This process's devices hold one block of the batch axis: it gathers and
  # sends only those examples of every global batch.
  local = parallel.local_batch_slice(sharding, shape, batch_axis=1)

  def local_indices(step: int) -> np.ndarray:
    if shard[1] > 1:
      return indices(step, local.stop - local.start)
    return indices(step)[:, local]

  def global_batch(step: int) -> tuple[dict[str, jax.Array]]:
    rows = local_indices(step)
    return ({key: jax.make_array_from_process_local_data(
        sharding, array[rows], shape + array.shape[1:])
             for key, array in arrays.items()},)

  return train_step.make_train_step(gan, mesh), global_batch


def _dataset_facts(dataset: data_lib.Dataset,
                   shard: tuple[int, int]) -> tuple[int, str]:
  """(examples, digest) of the whole dataset, also when sharded over processes.

  A shard's facts are gathered from every process (a collective): the
  total count and a digest of the shards' digests in shard order.
  """
  digest = validation.dataset_digest(dataset.examples, dataset.labels)
  if shard[1] == 1:
    return dataset.num_examples, digest
  counts = multihost_utils.process_allgather(np.int64(dataset.num_examples))
  digests = multihost_utils.process_allgather(
      np.frombuffer(bytes.fromhex(digest), np.uint8))
  combined = hashlib.sha256(np.ascontiguousarray(digests).tobytes())
  return int(np.sum(counts)), combined.hexdigest()[:16]


def _restore_or_init(workdir: str, gan: train_step.GAN, mesh: jax.sharding.Mesh,
                     checkpointer: checkpointing.Checkpointer,
                     facts: dict[str, Any]) -> train_step.TrainState:
  """The latest checkpoint's state if the run may resume it, else a new one."""
  latest = checkpointer.latest_step()
  if latest is None:
    return train_step.init_state_on_mesh(gan, mesh)
  # Compare before touching arrays, whose shapes may differ.
  saved_meta = checkpointing.read_meta(workdir, latest)
  saved_facts = saved_meta.get("facts")
  if saved_facts is None:
    # Checkpoints from before facts were saved: what their config and data
    # shape say (no digest: the dataset's contents cannot be compared).
    saved_config = checkpointing.config_from_meta(saved_meta)
    saved_facts = validation.math_facts(
        saved_config, saved_meta.get("num_examples", facts["dataset"][
            "num_examples"]), tuple(saved_meta["data_shape"]),
        facts["dataset"]["digest"])
  validation.check_resume(saved_facts, facts, workdir)
  saved_processes = saved_meta.get("num_processes", 1)
  if saved_processes != jax.process_count():
    # Allowed: the state is replicated (restored onto this mesh) and the
    # global batch is a function of (seed, step) alone.
    logging.info("Resuming a run saved by %d process(es) with %d: the same "
                 "run (replicated state, the same global batches).",
                 saved_processes, jax.process_count())
  abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=parallel.replicated(mesh)),
      abstract)
  state, _ = checkpointer.restore(abstract)
  logging.info("Resumed from %s at step %d.",
               checkpointing.checkpoint_dir(workdir), int(state.step))
  return state


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> train_step.TrainState:
  """Trains for config.num_train_steps generator steps, resuming from WORKDIR.

  Returns the final train state. Raises NonFiniteLossError (keeping the last
  good checkpoint) if a loss or the state becomes NaN or Inf, a UserError
  (validation.ConfigError, data_lib.DataError, ...) for a config or
  data that cannot work, and SystemExit(128 + signal) after saving a
  checkpoint on SIGTERM/SIGINT.
  """
  validation.validate(config)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  distributed.check_shared_directory(workdir)
  cache_dir = config.data.cache_dir or os.path.join(workdir, "data_cache")
  shard = data_shard(config)
  dataset = data_lib.load_dataset(config.data, cache_dir=cache_dir,
                                  seed=config.seed, shard=shard)
  logging.info("Dataset: %s%s", dataset, f" (shard {shard[0] + 1} of "
               f"{shard[1]})" if shard[1] > 1 else "")
  data_shape = tuple(dataset.example_shape)
  validation.check_data_shape(config, data_shape)
  validation.check_labels(config, dataset)
  gan = train_step.create_gan(config, data_shape, dataset.class_frequencies)
  mesh = parallel.make_mesh()
  step_fn, step_inputs = input_feed(config, dataset, gan, mesh)
  num_examples, digest = _dataset_facts(dataset, shard)
  facts = validation.math_facts(config, num_examples, data_shape, digest,
                                data_shards=shard[1])

  checkpointer = checkpointing.Checkpointer(workdir, config.keep_checkpoints)
  meta = {"config": config.to_dict(), "data_shape": list(data_shape),
          "class_names": list(dataset.class_names),
          "num_examples": num_examples, "facts": facts,
          "num_processes": jax.process_count()}
  state = _restore_or_init(workdir, gan, mesh, checkpointer, facts)
  start = int(state.step)
  total = config.num_train_steps
  if start == 0:
    logging.info("Parameters:\n%s", parameter_overview(state))
  evaluator = None
  if config.eval.eval_every:
    # Loads the Inception weights (a missing file fails here, before any
    # training) and the reference features (computed once, then cached).
    evaluator = evaluator_lib.TrainingEvaluator(config, workdir, start, mesh)

  writer = run_logs.MetricWriter(workdir, enabled=parallel.is_primary())
  z_fixed = sampling.fixed_noise(config.seed, config.num_samples,
                                 config.model.z_dim)
  history = MetricHistory(start)
  clock = {"time": time.perf_counter(), "step": start}

  def log(done: int, state: train_step.TrainState) -> None:
    del state
    means = history.pop_means()
    now = time.perf_counter()
    steps_per_sec = (done - clock["step"]) / max(now - clock["time"], 1e-9)
    clock.update(time=now, step=done)
    means["steps_per_sec"] = steps_per_sec
    means["critic_images_per_sec"] = (steps_per_sec * config.batch_size
                                      * config.n_critic)
    writer.write_scalars(done, means)
    run_logs.log_scalars(done, means)
    logging.info("step %d/%d: %.3g steps/s, ETA %s", done, total,
                 steps_per_sec,
                 format_duration((total - done) / max(steps_per_sec, 1e-9)))

  def samples(done: int, state: train_step.TrainState) -> None:
    if parallel.is_primary():
      _write_samples(workdir, writer, config, gan, state, z_fixed, done,
                     dataset.class_names)

  def checkpoint(done: int, state: train_step.TrainState) -> None:
    # Checked before every save, so a saved state is always a good one.
    history.check()
    check_state(state, done)
    checkpointer.save(done, state, meta)

  def evaluate(done: int, state: train_step.TrainState) -> None:
    evaluator(done, gan, state, writer)
    clock.update(time=time.perf_counter(), step=done)  # Not training throughput.

  actions = [
      PeriodicAction("log", config.log_every, log, on_preemption=False),
      PeriodicAction("samples", config.sample_every, samples),
      PeriodicAction("checkpoint", config.checkpoint_every, checkpoint,
                     on_preemption=True),
  ]
  if evaluator is not None:
    actions.append(PeriodicAction("evaluate", config.eval.eval_every,
                                  evaluate))

  with _Preemption() as preemption, _finally(checkpointer, writer):
    for step in range(start, total):
      inputs = step_inputs(step)
      if step == start:
        # Compile ahead of time, so that throughput and ETA exclude it.
        t0 = time.perf_counter()
        step_fn = step_fn.lower(state, *inputs).compile()
        logging.info("Compiled the train step in %.1f s.", time.perf_counter() - t0)
        clock.update(time=time.perf_counter(), step=start)
      state, metrics = step_fn(state, *inputs)
      history.append(metrics)
      done = step + 1
      preempted = preemption.stop_after(done)
      for action in actions:
        if (action.on_preemption and preempted) or (
            not preempted and itstime(done, action.every, total)):
          action.run(done, state)
      if preempted:
        checkpointer.wait()
        logging.warning("Checkpoint of step %d saved; exiting on signal %d.",
                        done, preemption.signum)
        raise SystemExit(128 + preemption.signum)
  return state


@contextlib.contextmanager
def _finally(checkpointer: checkpointing.Checkpointer,
             writer: run_logs.MetricWriter):
  """Finishes pending checkpoint writes and closes the logs, even on errors."""
  try:
    yield
  finally:
    checkpointer.wait()
    checkpointer.close()
    writer.close()
