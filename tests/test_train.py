"""End-to-end specification of train.train_and_evaluate and the command line."""

import os
import signal
import subprocess
import sys
import time

import chex
import conftest
import jax
import numpy as np
import pytest

from configs import anime_wgan
from configs import fashion_mnist_wgangp
from configs import toy_wgangp
from wgan_jax import checkpointing
from wgan_jax import images
from wgan_jax import input_pipeline
from wgan_jax import presets
from wgan_jax import run_logs
from wgan_jax import sampling
from wgan_jax import train
from wgan_jax import validation

REPO = conftest.REPO


def _fashion_config(steps: int = 4):
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_wgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = steps
  return config


def _toy_config(steps: int = 4):
  config = toy_wgangp.get_config("smoke")
  config.num_train_steps = steps
  config.model.width = 16
  return config


def _restore_state(workdir, config, data_shape, step=None):
  from wgan_jax import train_step  # pylint: disable=g-import-not-at-top
  gan = train_step.create_gan(config, data_shape)
  abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
  state, _ = checkpointing.Checkpointer(workdir).restore(abstract, step)
  return jax.device_get(state)


def test_fashion_mnist_run_writes_checkpoints_samples_and_logs(tmp_path):
  config = _fashion_config()
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 4
  assert checkpointing.steps(str(tmp_path)) == [2, 4]
  for step in (2, 4):
    grid = images.read_png(run_logs.sample_path(str(tmp_path), step))
    assert grid.dtype == np.uint8 and grid.shape[-1] == 1  # grayscale stays
  records = run_logs.read_metrics(str(tmp_path))
  assert [r["step"] for r in records] == [2, 4]
  for name in ("critic/loss", "critic/wasserstein", "critic/gradient_penalty",
               "generator/loss", "steps_per_sec"):
    assert np.isfinite(records[-1][name])
  assert any(f.startswith("events.out.tfevents") for f in
             os.listdir(tmp_path / run_logs.TENSORBOARD_DIR))
  # The saved state is the returned one.
  chex.assert_trees_all_equal(
      _restore_state(str(tmp_path), config, (28, 28, 1)), jax.device_get(state))


def test_anime_zip_run_with_the_seed_000_config(tmp_path):
  path = conftest.require_data("anime_faces_64.zip")
  config = anime_wgan.get_config("smoke")
  config.data.path = str(path)
  config.num_train_steps = 2
  state = train.train_and_evaluate(config, str(tmp_path))
  # Weight clipping held through training.
  for leaf in jax.tree.leaves(state.critic_params):
    assert float(np.max(np.abs(leaf))) <= config.clip_value
  grid = images.read_png(run_logs.sample_path(str(tmp_path), 2))
  assert grid.shape[-1] == 3
  # The decoded data was cached under the workdir: a second load reads it.
  assert os.listdir(tmp_path / "data_cache")


def test_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tmp_path):
  config = _fashion_config(steps=4)
  full = train.train_and_evaluate(config, str(tmp_path / "full"))
  config.num_train_steps = 2
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 4
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  chex.assert_trees_all_equal(jax.device_get(resumed), jax.device_get(full))
  # Same samples too (fixed noise does not depend on where the run restarted).
  np.testing.assert_array_equal(
      images.read_png(run_logs.sample_path(str(tmp_path / "full"), 4)),
      images.read_png(run_logs.sample_path(str(tmp_path / "resumed"), 4)))


def test_host_fed_batches_give_the_same_run_as_the_on_device_dataset(tmp_path):
  config = _fashion_config(steps=2)
  on_device = train.train_and_evaluate(config, str(tmp_path / "device"))
  config.data.on_device = False
  host_fed = train.train_and_evaluate(config, str(tmp_path / "host"))
  chex.assert_trees_all_equal(jax.device_get(host_fed),
                              jax.device_get(on_device))
  # The two feeds are interchangeable in one run: resuming with the other
  # one is allowed and continues the same run.
  config.data.on_device = True
  config.num_train_steps = 3
  resumed = train.train_and_evaluate(config, str(tmp_path / "host"))
  assert int(resumed.step) == 3


def test_resuming_with_a_different_model_is_refused(tmp_path):
  config = _toy_config(steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  config.num_train_steps = 4
  config.model.width = 32
  with pytest.raises(validation.ConfigError, match="model.width: 16 -> 32"):
    train.train_and_evaluate(config, str(tmp_path))


def test_load_generator_reproduces_the_training_samples(tmp_path):
  config = _fashion_config(steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  generator = sampling.load_generator(str(tmp_path))
  assert generator.step == 2 and generator.data_shape == (28, 28, 1)
  z = sampling.fixed_noise(config.seed, config.num_samples, config.model.z_dim)
  grid = images.make_grid(sampling.sample(generator, z))
  np.testing.assert_array_equal(grid, images.read_png(run_logs.sample_path(str(tmp_path), 2)))


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch):
  config = _toy_config(steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  good = _restore_state(str(tmp_path), config, (2,))

  real_load = input_pipeline.load_dataset

  def poisoned(*args, **kwargs):
    dataset = real_load(*args, **kwargs)
    examples = np.full_like(dataset.examples, np.nan)
    return input_pipeline.Dataset(examples, dataset.labels, dataset.class_names,
                                  dataset.source)

  monkeypatch.setattr(input_pipeline, "load_dataset", poisoned)
  config.num_train_steps = 6
  with pytest.raises(train.NonFiniteLossError, match="at step 3"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.steps(str(tmp_path)) == [2]
  chex.assert_trees_all_equal(_restore_state(str(tmp_path), config, (2,)), good)


def test_gradient_penalty_with_batch_norm_critic_is_refused(tmp_path):
  config = _toy_config()
  config.data.source = "fashion_mnist"
  config.model = presets.model_config("dcgan", critic_norm="batch")
  with pytest.raises(validation.ConfigError, match="critic_norm='layer' or 'none'"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not checkpointing.steps(str(tmp_path))


def _main(workdir, *flags, **popen):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
             WGAN_JAX_DATA_DIR=str(conftest.data_dir()))
  cmd = [sys.executable, "-m", "wgan_jax.main", f"--workdir={workdir}", *flags]
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **popen)


def test_misspelt_config_field_fails_loudly(tmp_path):
  proc = _main(tmp_path, "--config=configs/toy_wgangp.py:smoke",
               "--config.batch_sise=3")
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode != 0
  assert "batch_sise" in out


def test_sigterm_saves_a_checkpoint_before_exiting_and_the_run_resumes(tmp_path):
  flags = ["--config=configs/toy_wgangp.py:smoke", "--config.num_train_steps=100000",
           "--config.checkpoint_every=100000", "--config.log_every=5",
           "--config.model.width=16"]
  proc = _main(tmp_path, *flags)
  deadline = time.time() + 300
  metrics = tmp_path / run_logs.METRICS_FILE
  while not (metrics.exists() and metrics.read_text().strip()):
    assert proc.poll() is None, proc.communicate()[0]
    assert time.time() < deadline, "training did not start logging"
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 128 + signal.SIGTERM, out
  saved = checkpointing.steps(str(tmp_path))
  assert len(saved) == 1 and saved[0] >= 5, out  # never a scheduled save
  # The same command resumes from there.
  resume = _main(tmp_path, *flags[:1], f"--config.num_train_steps={saved[0] + 2}",
                 *flags[2:])
  out, _ = resume.communicate(timeout=300)
  assert resume.returncode == 0, out
  assert "Resumed from" in out and checkpointing.steps(str(tmp_path))[-1] == saved[0] + 2
