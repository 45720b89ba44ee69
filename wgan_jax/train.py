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
(input_pipeline.batch_indices) and all noise (train_step.step_noise) are pure
functions of (config.seed, step).
"""

import contextlib
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

from wgan_jax import checkpointing
from wgan_jax import evaluator
from wgan_jax import images
from wgan_jax import input_pipeline
from wgan_jax import parallel
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train_step
from wgan_jax import validation


# Config fields a resumed run may change: they do not alter the mathematics.
_RESUMABLE_CHANGES = ("num_train_steps", "log_every", "sample_every",
                      "checkpoint_every", "keep_checkpoints", "num_samples",
                      "data.cache_dir", "data.path", "data.on_device",
                      "eval")
# Largest dataset kept on the devices (config.data.on_device), replicated on
# each: leaves most of a GPU's memory, and of a host's, to the step.
MAX_ON_DEVICE_BYTES = 2 << 30


class NonFiniteLossError(FloatingPointError):
  """A loss or gradient norm became NaN or Inf."""


class _Preemption:
  """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: saving a checkpoint, then exiting.",
                    signum)
    self.signum = signum

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _flat(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flat(value, name + "."))
    else:
      out[name] = tuple(value) if isinstance(value, (list, tuple)) else value
  return out


def _check_resume_config(saved: ml_collections.ConfigDict,
                         config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a run whose config changes its mathematics."""
  old, new = _flat(saved), _flat(config)
  changed = sorted(
      k for k in set(old) | set(new)
      if old.get(k) != new.get(k)
      and not any(k == f or k.startswith(f + ".") for f in _RESUMABLE_CHANGES))
  if changed:
    details = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
    raise validation.ConfigError(
        f"{workdir} holds a run trained with a different config ({details}). "
        "Resume with the same config, or start the new one in a new --workdir.")


def _mean_metrics(history: list[dict[str, jax.Array]], first_step: int) -> dict[str, float]:
  """Host-side means of per-step device metrics; raises on NaN/Inf."""
  fetched = jax.device_get(history)
  for offset, metrics in enumerate(fetched):
    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
    if bad:
      raise NonFiniteLossError(
          f"Non-finite {', '.join(bad)} at step {first_step + offset + 1}.")
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def _write_samples(workdir: str, writer: run_logs.MetricWriter,
                   gan: train_step.GAN, state: train_step.TrainState,
                   z: jax.Array, step: int) -> None:
  variables = {"params": state.generator_params}
  if state.generator_batch_stats:
    variables["batch_stats"] = state.generator_batch_stats
  out = sampling.generate(gan.generator, variables, z)
  if len(gan.data_shape) != 3:
    return  # 2-D toy points: `generate landscape` draws them
  grid = images.make_grid(input_pipeline.to_uint8(out, gan.output_activation))
  images.save_png(run_logs.sample_path(workdir, step), grid)
  writer.write_image(step, "samples", grid)


def input_feed(config: ml_collections.ConfigDict,
               dataset: input_pipeline.Dataset, gan: train_step.GAN,
               mesh: jax.sharding.Mesh) -> tuple[Any, Callable[..., tuple]]:
  """The jitted step and a function from batch indices to its data inputs.

  On device (config.data.on_device, one process, a dataset that fits): the
  uint8 dataset is copied to every device once and the step gathers its
  batches itself, so the host does no per-step work. Otherwise each process
  gathers its slice of every global batch and sends it.
  """
  nbytes = dataset.examples.nbytes
  if (config.data.on_device and jax.process_count() == 1
      and nbytes <= MAX_ON_DEVICE_BYTES):
    logging.info("Dataset on the devices (%.1f MiB); batches gathered in "
                 "the step.", nbytes / 2**20)
    examples = jax.device_put(dataset.examples, parallel.replicated(mesh))
    step_fn = train_step.make_train_step(
        gan, mesh, step_fn=train_step.train_step_on_device_data)
    return step_fn, lambda indices: (examples, indices)
  logging.info("Batches gathered on the host (data.on_device=%s, %d "
               "processes, %.1f MiB).", config.data.on_device,
               jax.process_count(), nbytes / 2**20)
  per_process = config.batch_size // jax.process_count()
  local = slice(jax.process_index() * per_process,
                (jax.process_index() + 1) * per_process)
  global_shape = (config.n_critic, config.batch_size) + tuple(
      dataset.example_shape)
  sharding = parallel.batch_sharded(mesh, 1)
  return train_step.make_train_step(gan, mesh), lambda indices: (
      jax.make_array_from_process_local_data(
          sharding, dataset.examples[indices[:, local]], global_shape),)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> train_step.TrainState:
  """Trains for config.num_train_steps generator steps, resuming from WORKDIR.

  Returns the final train state. Raises NonFiniteLossError (keeping the last
  good checkpoint) if a loss becomes NaN or Inf, and SystemExit(128 + signal)
  after saving a checkpoint on SIGTERM/SIGINT.
  """
  validation.validate(config)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  cache_dir = config.data.cache_dir or os.path.join(workdir, "data_cache")
  dataset = input_pipeline.load_dataset(config.data, cache_dir=cache_dir,
                                        seed=config.seed)
  logging.info("Dataset: %s", dataset)
  data_shape = tuple(dataset.example_shape)
  gan = train_step.create_gan(config, data_shape)
  mesh = parallel.make_mesh()
  step_fn, step_inputs = input_feed(config, dataset, gan, mesh)

  checkpointer = checkpointing.Checkpointer(workdir, config.keep_checkpoints)
  meta = {"config": config.to_dict(), "data_shape": list(data_shape),
          "class_names": list(dataset.class_names),
          "num_examples": dataset.num_examples}
  if checkpointer.latest_step() is not None:
    # Compare configs before touching arrays, whose shapes may differ.
    saved_meta = checkpointing.read_meta(workdir, checkpointer.latest_step())
    _check_resume_config(checkpointing.config_from_meta(saved_meta), config,
                         workdir)
    abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                       sharding=parallel.replicated(mesh)),
        abstract)
    state, _ = checkpointer.restore(abstract)
    logging.info("Resumed from %s at step %d.",
                 checkpointing.checkpoint_dir(workdir), int(state.step))
  else:
    state = train_step.init_state_on_mesh(gan, mesh)
  start = int(state.step)
  evaluator = None
  if config.eval.eval_every:
    # Loads the Inception weights (a missing file fails here, before any
    # training) and the reference features (computed once, then cached).
    evaluator = evaluator.TrainingEvaluator(config, workdir, start, mesh)

  writer = run_logs.MetricWriter(workdir, enabled=parallel.is_primary())
  z_fixed = sampling.fixed_noise(config.seed, config.num_samples,
                                 config.model.z_dim)
  history: list[dict[str, jax.Array]] = []
  history_start = start
  last_log = (time.perf_counter(), start)
  with _Preemption() as preemption, _finally(checkpointer, writer):
    for step in range(start, config.num_train_steps):
      indices = input_pipeline.batch_indices(
          dataset.num_examples, config.seed, step, config.n_critic,
          config.batch_size)
      inputs = step_inputs(indices)
      if step == start:
        # Compile ahead of time, so that throughput and ETA exclude it.
        t0 = time.perf_counter()
        step_fn = step_fn.lower(state, *inputs).compile()
        logging.info("Compiled the train step in %.1f s.", time.perf_counter() - t0)
        last_log = (time.perf_counter(), start)
      state, metrics = step_fn(state, *inputs)
      history.append(metrics)
      done = step + 1
      last = done == config.num_train_steps
      preempted = preemption.signum is not None

      if done % config.log_every == 0 or last or preempted or (
          done % config.checkpoint_every == 0):
        # Checked before any checkpoint, so a saved state is always finite.
        means = _mean_metrics(history, history_start)
        history, history_start = [], done
        if done % config.log_every == 0 or last:
          now = time.perf_counter()
          steps_per_sec = (done - last_log[1]) / max(now - last_log[0], 1e-9)
          last_log = (now, done)
          means["steps_per_sec"] = steps_per_sec
          means["critic_images_per_sec"] = (steps_per_sec * config.batch_size
                                            * config.n_critic)
          writer.write_scalars(done, means)
          run_logs.log_scalars(done, means)
          remaining = (config.num_train_steps - done) / max(steps_per_sec, 1e-9)
          logging.info("step %d/%d: %.3g steps/s, ETA %s", done,
                       config.num_train_steps, steps_per_sec,
                       time.strftime("%H:%M:%S", time.gmtime(remaining)))
      if done % config.sample_every == 0 or last:
        if parallel.is_primary():
          _write_samples(workdir, writer, gan, state, z_fixed, done)
      if done % config.checkpoint_every == 0 or last or preempted:
        checkpointer.save(done, state, meta)
      if (evaluator is not None and not preempted
          and evaluator.should_evaluate(done, last)):
        evaluator(done, gan, state, writer)
        last_log = (time.perf_counter(), done)  # Not training throughput.
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
