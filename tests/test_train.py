"""End-to-end specification of train.train_and_evaluate and the command line."""

import os
import re
import signal
import subprocess
import sys
import time

import chex
import conftest
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import anime_wgan
from configs import fashion_mnist_wgangp
from configs import toy_wgangp
from wgan_jax import checkpointing
from wgan_jax import data as data_lib
from wgan_jax import images
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
  for leaf in jax.tree.leaves(state.critic.params):
    assert float(np.max(np.abs(leaf))) <= config.clip_value
  grid = images.read_png(run_logs.sample_path(str(tmp_path), 2))
  assert grid.shape[-1] == 3
  # The decoded data was cached under the workdir: a second load reads it.
  assert os.listdir(tmp_path / "data_cache")


def _full_and_resumed(config, tmp_path):
  """Final states of a 4-step run and of the same run stopped at 2 and resumed;
  asserts they are bitwise equal, and their step-4 sample grids too (if any)."""
  config.num_train_steps = 4
  full = train.train_and_evaluate(config, str(tmp_path / "full"))
  config.num_train_steps = 2
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 4
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  chex.assert_trees_all_equal(jax.device_get(resumed), jax.device_get(full))
  grid = run_logs.sample_path(str(tmp_path / "full"), 4)
  if os.path.exists(grid):
    # Same samples (fixed noise does not depend on where the run restarted).
    np.testing.assert_array_equal(images.read_png(grid), images.read_png(
        run_logs.sample_path(str(tmp_path / "resumed"), 4)))
  return full, resumed


def test_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tmp_path):
  _full_and_resumed(_fashion_config(), tmp_path)


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
  uninterrupted = train.train_and_evaluate(config, str(tmp_path / "device"))
  assert int(resumed.step) == 3
  chex.assert_trees_all_equal(jax.device_get(resumed),
                              jax.device_get(uninterrupted))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  """A 2-step toy run (checkpoints at 1 and 2), trained once for this module."""
  workdir = str(tmp_path_factory.mktemp("toy_run"))
  config = _toy_config(steps=2)
  config.checkpoint_every = 1
  train.train_and_evaluate(config, workdir)
  return workdir


def _copy_run(workdir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = str(tmp_path / "run")
  shutil.copytree(workdir, copy)
  return copy


@pytest.mark.parametrize("field,value,named", [
    ("model.width", 32, "model.width: 16 -> 32"),
    ("seed", 1, "seed: 0 -> 1"),
    ("gp_weight", 5.0, "gp_weight: 1.0 -> 5.0"),
    ("n_critic", 1, "n_critic: 2 -> 1"),
    ("batch_size", 16, "batch_size: 8 -> 16"),
    ("loss", "wgan-lp", "loss: 'wgan-gp' -> 'wgan-lp'"),
    ("optimizer.critic_learning_rate", 1e-3, "optimizer.critic_learning_rate"),
    ("optimizer.b2", 0.99, "optimizer.b2: 0.9 -> 0.99"),
    # Other data: the 256-point smoke subset of 2048 toy points, not of 1024.
    ("data.toy_num_examples", 2048, "the dataset's contents"),
])
def test_resuming_with_changed_mathematics_is_refused(toy_run, tmp_path, field,
                                                      value, named):
  workdir = _copy_run(toy_run, tmp_path)
  config = _toy_config(steps=4)
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(validation.ConfigError, match=re.escape(named)):
    train.train_and_evaluate(config, workdir)
  assert checkpointing.steps(workdir) == [1, 2]  # nothing was written


def test_changing_the_data_contents_is_refused_even_at_the_same_size(tmp_path):
  # Same count and shape, other images (64 of the test split instead of 64
  # of the training split): only the digest tells them apart.
  config = _fashion_config(steps=2)
  config.data.max_examples = 64
  train.train_and_evaluate(config, str(tmp_path))
  config.num_train_steps = 4
  config.data.split = "test"
  with pytest.raises(validation.ConfigError, match="the dataset's contents"):
    train.train_and_evaluate(config, str(tmp_path))


def test_a_longer_linear_schedule_is_refused_and_a_longer_constant_one_resumes(
    toy_run, tmp_path):
  workdir = _copy_run(toy_run, tmp_path)
  config = _toy_config(steps=3)
  config.log_every, config.eval.num_samples = 1, 500  # safe to change
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 3
  linear = str(tmp_path / "linear")
  config = _toy_config(steps=2)
  config.optimizer.schedule = "linear"
  train.train_and_evaluate(config, linear)
  config.num_train_steps = 4
  with pytest.raises(validation.ConfigError, match="num_train_steps.*2 -> 4"):
    train.train_and_evaluate(config, linear)


def test_only_the_last_keep_checkpoints_are_kept(tmp_path):
  config = _toy_config(steps=5)
  config.checkpoint_every, config.keep_checkpoints = 1, 2
  train.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.steps(str(tmp_path)) == [4, 5]


def test_a_version_1_checkpoint_resumes_and_samples_as_it_was_saved(tmp_path):
  """Runs saved before the per-network state (flat generator_params, ...)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from wgan_jax import train_step  # pylint: disable=g-import-not-at-top
  config = _fashion_config(steps=2)
  new = str(tmp_path / "new")
  state = train.train_and_evaluate(config, new)
  meta = checkpointing.read_meta(new)
  old_meta = {k: v for k, v in meta.items()
              if k not in ("format_version", "facts")}
  old = tmp_path / "old" / checkpointing.CHECKPOINT_DIR
  with ocp.CheckpointManager(old, item_names=("state", "meta")) as manager:
    manager.save(2, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(checkpointing._to_legacy(jax.device_get(state))),
        meta=ocp.args.JsonSave(old_meta)))
  old = str(tmp_path / "old")
  assert checkpointing.format_version(checkpointing.read_meta(old)) == 1
  gan = train_step.create_gan(config, (28, 28, 1))
  abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
  restored, _ = checkpointing.Checkpointer(old).restore(abstract)
  chex.assert_trees_all_equal(jax.device_get(restored), jax.device_get(state))
  np.testing.assert_array_equal(
      sampling.sample(sampling.load_generator(old), jnp.ones((2, 100))),
      sampling.sample(sampling.load_generator(new), jnp.ones((2, 100))))
  config.num_train_steps = 3
  chex.assert_trees_all_equal(
      jax.device_get(train.train_and_evaluate(config, old)),
      jax.device_get(train.train_and_evaluate(config, new)))
  assert checkpointing.format_version(checkpointing.read_meta(old)) == 2


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

  real_load = data_lib.load_dataset

  def poisoned(*args, **kwargs):
    dataset = real_load(*args, **kwargs)
    examples = np.full_like(dataset.examples, np.nan)
    return data_lib.Dataset(examples, dataset.labels, dataset.class_names,
                            dataset.source)

  monkeypatch.setattr(data_lib, "load_dataset", poisoned)
  # The poisoned data would be refused as other data; this test is about
  # what a NaN does, so the resume check is passed over.
  monkeypatch.setattr(validation, "check_resume", lambda *args: None)
  config.num_train_steps = 6
  with pytest.raises(train.NonFiniteLossError, match="at step 3"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checkpointing.steps(str(tmp_path)) == [2]
  chex.assert_trees_all_equal(_restore_state(str(tmp_path), config, (2,)), good)


def test_the_state_is_checked_before_every_save(tmp_path, monkeypatch):
  real_check = train.check_state
  checked = []

  def check_state(state, step):
    checked.append(step)
    if step == 4:
      raise train.NonFiniteLossError(f"poisoned at step {step}")
    real_check(state, step)

  monkeypatch.setattr(train, "check_state", check_state)
  config = _toy_config(steps=6)
  with pytest.raises(train.NonFiniteLossError, match="poisoned at step 4"):
    train.train_and_evaluate(config, str(tmp_path))
  assert checked == [2, 4] and checkpointing.steps(str(tmp_path)) == [2]


def test_check_state_finds_a_nan_in_any_part_of_the_state():
  from wgan_jax import train_step  # pylint: disable=g-import-not-at-top
  config = _toy_config()
  gan = train_step.create_gan(config, (2,))
  state = train_step.create_train_state(gan)
  train.check_state(state, 1)  # finite: no error
  leaves, treedef = jax.tree.flatten(state.critic.opt_state)
  float_leaf = next(i for i, x in enumerate(leaves)
                    if jnp.issubdtype(x.dtype, jnp.floating) and x.size)
  leaves[float_leaf] = jnp.full_like(leaves[float_leaf], jnp.nan)
  poisoned = state.replace(critic=state.critic.replace(
      opt_state=jax.tree.unflatten(treedef, leaves)))
  with pytest.raises(train.NonFiniteLossError, match="critic's state at step 7"):
    train.check_state(poisoned, 7)


def test_itstime_runs_on_multiples_and_after_the_last_step():
  assert [s for s in range(1, 11) if train.itstime(s, 4, 10)] == [4, 8, 10]
  assert [s for s in range(1, 11) if train.itstime(s, 4, 10, last=False)] == [4, 8]
  assert [s for s in range(1, 11) if train.itstime(s, 0, 10)] == [10]


def test_eta_is_right_past_24_hours():
  assert train.format_duration(59.6) == "00:01:00"
  assert train.format_duration(3 * 3600 + 62) == "03:01:02"
  assert train.format_duration(2 * 86400 + 3600 + 5) == "2d 01:00:05"


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


def _user_error(workdir, *flags):
  """(exit status, stderr lines after absl's startup lines) of a main run."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="",
             WGAN_JAX_DATA_DIR=str(conftest.data_dir()))
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.main", f"--workdir={workdir}", *flags],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  errors = [l for l in proc.stderr.splitlines() if "error:" in l]
  return proc.returncode, errors, proc.stderr


def test_a_misspelt_field_in_a_config_file_is_one_line_naming_it(tmp_path):
  config_file = tmp_path / "mine.py"
  config_file.write_text(
      "from configs import toy_wgangp\n"
      "def get_config():\n"
      "  config = toy_wgangp.get_config('smoke')\n"
      "  config.n_critics = 3\n"
      "  return config\n")
  code, errors, stderr = _user_error(tmp_path / "run", f"--config={config_file}")
  assert code == 1, stderr
  assert "Traceback" not in stderr
  assert len(errors) == 1 and "config.n_critics (did you mean config.n_critic?)" in errors[0]


@pytest.mark.parametrize("flags,named", [
    (["--config.data.source=folder", "--config.data.path=/nonexistent/images"],
     "/nonexistent/images does not exist"),
    (["--config.loss=wgan-gp", "--config.model.critic_norm=batch"],
     "critic_norm='layer' or 'none'"),
    (["--config.data.resize=squash"], "config.data.resize='squash'"),
])
def test_user_errors_are_one_line_and_exit_status_1(tmp_path, flags, named):
  code, errors, stderr = _user_error(
      tmp_path, "--config=configs/fashion_mnist_wgangp.py:smoke", *flags)
  assert code == 1, stderr
  assert "Traceback" not in stderr
  assert len(errors) == 1 and named in errors[0], stderr
  assert errors[0].startswith("wgan_jax.main: error: ")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_a_checkpoint_before_exiting_and_the_run_resumes(
    tmp_path, signum):
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
  proc.send_signal(signum)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 128 + signum, out
  saved = checkpointing.steps(str(tmp_path))
  assert len(saved) == 1 and saved[0] >= 5, out  # never a scheduled save
  # The same command resumes from there.
  resume = _main(tmp_path, *flags[:1], f"--config.num_train_steps={saved[0] + 2}",
                 *flags[2:])
  out, _ = resume.communicate(timeout=300)
  assert resume.returncode == 0, out
  assert "Resumed from" in out and checkpointing.steps(str(tmp_path))[-1] == saved[0] + 2


def _conditional_config(steps: int = 4):
  from configs import fashion_mnist_cwgangp  # pylint: disable=g-import-not-at-top
  conftest.require_data("fashion-mnist/train-images-idx3-ubyte.gz")
  config = fashion_mnist_cwgangp.get_config("smoke")
  config.data.path = str(conftest.data_dir() / "fashion-mnist")
  config.num_train_steps = steps
  config.num_samples = 20  # two columns per class
  return config


def test_a_resumed_conditional_run_is_bitwise_identical_with_a_row_per_class(
    tmp_path):
  config = _conditional_config()
  _full_and_resumed(config, tmp_path)
  grid = images.read_png(run_logs.sample_path(str(tmp_path / "full"), 4))
  # Ten rows (one per class, named on the left) of two 28x28 cells.
  cells = images.make_grid(np.zeros((20, 28, 28, 1), np.uint8), 2,
                           list(data_lib.FASHION_MNIST_CLASSES))
  assert grid.shape == cells.shape
  # The grid is the generator's samples for class k in row k.
  generator = sampling.load_generator(str(tmp_path / "full"))
  z = sampling.fixed_noise(config.seed, config.num_samples, config.model.z_dim)
  rows, labels, _ = sampling.class_rows(z[:2], 10)
  expected = images.make_grid(sampling.sample(generator, rows, labels), 2,
                              list(data_lib.FASHION_MNIST_CLASSES))
  np.testing.assert_array_equal(grid, expected)


def test_a_conditional_config_on_unlabelled_data_is_one_clear_error(tmp_path):
  config = _conditional_config()
  config.data.source = "folder"
  config.data.path = str(conftest.require_data("anime_faces_64.zip"))
  config.data.image_size = 28
  config.data.channels = 1
  with pytest.raises(validation.ConfigError, match="needs labelled data"):
    train.train_and_evaluate(config, str(tmp_path))


def test_an_ema_generator_with_batch_norm_samples_with_its_own_statistics(
    tmp_path):
  config = _fashion_config()
  config.ema.decay, config.ema.standing_batches = 0.9, 2
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)
  loaded = sampling.load_generator(workdir)
  raw = sampling.load_generator(workdir, ema=False)
  # Not the raw network's running averages, which the checkpoint holds ...
  running = jax.device_get(raw.variables["batch_stats"])
  standing = jax.device_get(loaded.variables["batch_stats"])
  assert not np.allclose(jax.tree.leaves(standing)[0],
                         jax.tree.leaves(running)[0])
  # ... but the average's own, drawn from the seed and the step: the grid
  # drawn during training is that of the loaded generator.
  expected = sampling.with_standing_stats(
      loaded.module, dict(loaded.variables, batch_stats=running), config, 4)
  chex.assert_trees_all_equal(standing, expected["batch_stats"])
  z = sampling.fixed_noise(config.seed, config.num_samples, config.model.z_dim)
  grid = images.read_png(run_logs.sample_path(workdir, 4))
  np.testing.assert_array_equal(grid,
                                images.make_grid(sampling.sample(loaded, z)))


def test_an_ema_run_resumes_bitwise_and_samples_with_the_average(tmp_path):
  config = _toy_config()
  config.ema.decay, config.ema.start_step = 0.9, 1
  full, _ = _full_and_resumed(config, tmp_path)
  average = jax.device_get(full.generator.sampling_variables()["params"])
  raw = jax.device_get(full.generator.params)
  assert not np.allclose(jax.tree.leaves(average)[0], jax.tree.leaves(raw)[0])
  # The saved generator is the average by default, the raw weights on request.
  workdir = str(tmp_path / "full")
  loaded = sampling.load_generator(workdir)
  assert loaded.ema
  chex.assert_trees_all_equal(jax.device_get(loaded.variables["params"]), average)
  chex.assert_trees_all_equal(
      jax.device_get(sampling.load_generator(workdir, ema=False).variables[
          "params"]), raw)
  # Switching the EMA off (or on) is a change of the state: refused.
  config.ema.decay = 0.0
  config.num_train_steps = 6
  with pytest.raises(validation.ConfigError, match=r"ema.decay: 0.9 -> 0.0"):
    train.train_and_evaluate(config, workdir)
