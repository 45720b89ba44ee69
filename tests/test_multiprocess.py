"""Multi-process runs, as on a TPU pod slice or a GPU cluster, on this CPU.

Every test launches real processes: 2 processes x 2 CPU devices on a
localhost coordinator (gloo collectives, as jax 0.10 sets up on CPU),
against 1 process x 4 devices, the same global mesh. Each process gets its
devices from XLA_FLAGS and is killed after a deadline, so a hang fails.

Not bitwise across process counts: the 2-process step sums the per-device
partial gradients with gloo's cross-process all-reduce, the 1-process step
with XLA:CPU's in-process one; they add the same four float32 terms in
other orders (float addition is not associative), so the states differ by
a unit in the last place after a step, and the difference carries on. The
tests compare with rtol=RTOL, atol=ATOL. Measured on the toy run after 2
and 4 steps: at most 6e-8 absolute, and 1.2e-6 relative where values are
not near zero (Adam moments of near-zero gradients differ by 7e-5
relative, 2e-8 absolute). A wrong batch (process 1 feeding process 0's
half again) moves parameters by 3e-6 absolute, 3e-3 relative, after 2
steps, and the step's losses by far more; that is caught. The processes of
one run hold bitwise identical states: the all-reduce leaves every device
the same sum.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import conftest
import jax
import numpy as np
import pytest

import test_evaluator

from wgan_jax import checkpointing
from wgan_jax import run_logs
from wgan_jax import train_step

REPO = conftest.REPO
WORKER = str(REPO / "tests" / "multiprocess_worker.py")
RTOL, ATOL = 1e-5, 3e-7
DEADLINE_S = 240  # per launch: a hang fails instead of blocking the suite
TOY = ["--config=configs/toy_wgangp.py:smoke", "--config.model.width=16"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(cmds: list[list[str]], log_dir, devices: int, name: str,
            signal_when=None) -> list[tuple[int, str]]:
  """Runs one process per command, each with `devices` CPU devices.

  With several commands each gets the coordinator flags of one run on a
  free localhost port.

  Args:
    signal_when: optional (predicate(), process index, signum): the signal
      is sent to that process once predicate() holds.

  Returns:
    (exit status, stdout + stderr) per process.
  """
  port = _free_port()
  # The session's compilation cache (conftest.py): the runs of this file
  # compile a few programs many times.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             WGAN_JAX_DATA_DIR=str(conftest.data_dir()),
             JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5",
             # The worker runs as a script: configs/ is imported from the root.
             PYTHONPATH=os.pathsep.join(
                 [str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
  procs, logs = [], []
  for i, cmd in enumerate(cmds):
    flags = ([f"--coordinator_address=127.0.0.1:{port}",
              f"--num_processes={len(cmds)}", f"--process_id={i}"]
             if len(cmds) > 1 else [])
    log = open(os.path.join(log_dir, f"{name}_{i}.log"), "w+")
    logs.append(log)
    procs.append(subprocess.Popen([sys.executable] + cmd + flags, cwd=REPO,
                                  env=env, stdout=log,
                                  stderr=subprocess.STDOUT))
  deadline = time.time() + DEADLINE_S
  try:
    while any(p.poll() is None for p in procs):
      if signal_when is not None and signal_when[0]():
        procs[signal_when[1]].send_signal(signal_when[2])
        signal_when = None
      assert time.time() < deadline, (
          f"{name} still running after {DEADLINE_S} s (a hang?)")
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  outputs = []
  for p, log in zip(procs, logs):
    log.seek(0)
    outputs.append((p.returncode, log.read()))
    log.close()
  return outputs


def _ok(outputs: list[tuple[int, str]]) -> list[str]:
  for i, (code, out) in enumerate(outputs):
    assert code == 0, f"process {i} exited with {code}:\n{out[-4000:]}"
  return [out for _, out in outputs]


def _train(tmp_path, workdir, flags, processes: int, devices: int, name: str):
  """Trains with the worker; (each process's state leaves, outputs)."""
  dumps = [str(tmp_path / f"{name}_{i}.npz") for i in range(processes)]
  outputs = _ok(_launch(
      [[WORKER, f"--workdir={workdir}", f"--dump={dump}", *flags]
       for dump in dumps], tmp_path, devices, name))
  states = []
  for dump in dumps:
    with np.load(dump) as f:
      states.append([f[f"arr_{k}"] for k in range(len(f.files))])
  return states, outputs


def _checkpoint_leaves(workdir, step) -> list[np.ndarray]:
  """The leaves of a saved TrainState, restored in this process."""
  meta = checkpointing.read_meta(str(workdir), step)
  config = checkpointing.config_from_meta(meta)
  gan = train_step.create_gan(config, tuple(meta["data_shape"]))
  abstract = jax.eval_shape(lambda: train_step.create_train_state(gan))
  state, _ = checkpointing.Checkpointer(str(workdir)).restore(abstract, step)
  return jax.tree.leaves(jax.device_get(state))


def _assert_bitwise(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def _assert_close(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL)


def test_two_processes_train_the_run_of_one_and_it_resumes_in_one(tmp_path):
  steps = ["--config.num_train_steps=2", "--config.checkpoint_every=2",
           "--config.log_every=1"]
  two, outputs = _train(tmp_path, tmp_path / "two", TOY + steps, 2, 2, "two")
  assert all("2 processes" in out for out in outputs)
  # Every process holds the same state, bitwise.
  _assert_bitwise(two[0], two[1])
  # The 1-process, 4-device run of the same config, 4 steps, saved at 2.
  longer = ["--config.num_train_steps=4", "--config.checkpoint_every=2",
            "--config.log_every=1"]
  (one,), _ = _train(tmp_path, tmp_path / "one", TOY + longer, 1, 4, "one")
  _assert_close(two[0], _checkpoint_leaves(tmp_path / "one", 2))
  # The losses of each step too (they see a wrong batch at once).
  logged = {r["step"]: r for r in run_logs.read_metrics(str(tmp_path / "one"))}
  for record in run_logs.read_metrics(str(tmp_path / "two")):
    for name in ("critic/loss", "critic/gradient_penalty", "generator/loss"):
      np.testing.assert_allclose(record[name], logged[record["step"]][name],
                                 rtol=RTOL, err_msg=name)
  # The 2-process checkpoint (saved collectively) holds what they held.
  _assert_bitwise(two[0], _checkpoint_leaves(tmp_path / "two", 2))
  # Process 0 alone wrote the logs: one record per log step, one event file.
  assert [r["step"] for r in run_logs.read_metrics(str(tmp_path / "two"))
          ] == [1, 2]
  assert (tmp_path / "two" / run_logs.METRICS_FILE).read_text().count(
      "\n") == 2
  assert len(os.listdir(tmp_path / "two" / run_logs.TENSORBOARD_DIR)) == 1
  # One process resumes it and continues the same run.
  (resumed,), (out,) = _train(tmp_path, tmp_path / "two", TOY + longer, 1, 4,
                              "resumed")
  assert "Resumed from" in out and "saved by 2 process(es) with 1" in out
  _assert_close(resumed, one)
  assert checkpointing.steps(str(tmp_path / "two")) == [2, 4]


def test_sigterm_to_one_process_makes_every_process_save_the_same_step(
    tmp_path):
  """And the same command resumes from it, in 2 processes again."""
  workdir = tmp_path / "run"
  metrics = workdir / run_logs.METRICS_FILE
  flags = TOY + ["--config.num_train_steps=100000",
                 "--config.checkpoint_every=100000", "--config.log_every=5"]
  cmd = ["-m", "wgan_jax.main", f"--workdir={workdir}", *flags]
  outputs = _launch(
      [cmd, cmd], tmp_path, 2, "sigterm",
      signal_when=(lambda: metrics.exists() and metrics.read_text().strip(),
                   1, signal.SIGTERM))
  saved = checkpointing.steps(str(workdir))
  assert len(saved) == 1 and saved[0] >= 5, outputs
  for code, out in outputs:
    assert code == 128 + signal.SIGTERM, out[-3000:]
    said = re.findall(r"Checkpoint of step (\d+) saved; exiting on signal 15",
                      out)
    assert said == [str(saved[0])], out[-3000:]
  # The same command again (as after a preemption of a TPU slice) resumes
  # in both processes.
  cmd = ["-m", "wgan_jax.main", f"--workdir={workdir}", *flags,
         f"--config.num_train_steps={saved[0] + 1}"]
  for out in _ok(_launch([cmd, cmd], tmp_path, 2, "resume")):
    assert f"at step {saved[0]}" in out and "Resumed from" in out, out[-3000:]
  assert checkpointing.steps(str(workdir)) == [saved[0], saved[0] + 1]


def test_a_workdir_that_is_not_shared_is_refused_on_every_process(tmp_path):
  # A folder per process, as on hosts that each write their own disk.
  outputs = _launch(
      [["-m", "wgan_jax.main", *TOY, f"--workdir={tmp_path / str(i)}"]
       for i in range(2)], tmp_path, 2, "unshared")
  for code, out in outputs:
    assert code == 1, out[-3000:]
    errors = [l for l in out.splitlines() if "error:" in l]
    assert len(errors) == 1 and "is not one directory shared by all " \
        "processes: process(es) [1] do not see" in errors[0], out[-3000:]
  assert not os.listdir(tmp_path / "0") and not os.listdir(tmp_path / "1")


def test_an_unreachable_coordinator_is_one_line_naming_it(tmp_path):
  port = _free_port()  # Nobody listens there.
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  proc = subprocess.run(
      [sys.executable, "-m", "wgan_jax.main", *TOY,
       f"--workdir={tmp_path}", f"--coordinator_address=127.0.0.1:{port}",
       "--num_processes=2", "--process_id=1", "--distributed_timeout=3"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if "error:" in l]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert errors[0].startswith("wgan_jax.main: error: process 1 of 2 could not "
                              f"join the run at coordinator 127.0.0.1:{port} "
                              "within 3 s")
  assert "--distributed_timeout" in errors[0]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
  """test_evaluator's 4-step Fashion-MNIST run (trained once per session)."""
  return test_evaluator.train_once(str(tmp_path_factory.getbasetemp()))


def _json_lines(out: str) -> list[dict]:
  return [json.loads(line) for line in out.splitlines()
          if line.startswith("{")]


def test_two_processes_evaluate_the_fid_of_one(trained_run, tmp_path):
  workdir, _ = trained_run  # 8 samples vs 8 real images, batches of 8

  def evaluate(cache):
    # A cache of its own: each command computes the reference itself.
    return ["-m", "wgan_jax.evaluate", f"--workdir={workdir}",
            f"--cache_dir={tmp_path / cache}"]

  two = _ok(_launch([evaluate("two"), evaluate("two")], tmp_path, 2, "two"))
  (one,) = _ok(_launch([evaluate("one")], tmp_path, 4, "one"))
  # Process 0 prints the line, process 1 nothing.
  (result,), rest = _json_lines(two[0]), _json_lines(two[1])
  assert rest == [], two[1][-2000:]
  (expected,) = _json_lines(one)
  assert result["step"] == expected["step"] == 4
  assert result["num_samples"] == result["num_real"] == test_evaluator.NUM
  # Each image's features come from the same per-device program: the same
  # numbers, exactly.
  for name in ("fid", "kid", "kid_std", "precision", "recall"):
    assert result[name] == expected[name], name


@pytest.mark.slow
def test_a_run_on_process_shards_decodes_half_each_and_samples_and_evaluates(
    tmp_path):
  """config.data.shard_by_process on a folder, with samples and evaluation.

  60-80 s here, hence slow; the other tests cover the same step, feed
  and evaluation code without shards.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  folder = tmp_path / "images"
  for name in ("cat", "dog"):
    (folder / name).mkdir(parents=True)
    for i in range(16):
      Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(
          folder / name / f"{i:02d}.png")
  weights = conftest.require_data(test_evaluator.WEIGHTS)
  workdir = tmp_path / "run"
  flags = ["--config=configs/anime_wgangp.py:smoke",
           f"--config.data.path={folder}", "--config.data.image_size=16",
           "--config.data.shard_by_process=True",
           "--config.num_train_steps=2", "--config.eval.eval_every=2",
           "--config.eval.num_samples=8", "--config.eval.num_real=8",
           "--config.eval.batch_size=8",
           f"--config.eval.inception_path={weights}"]
  states, outputs = _train(tmp_path, workdir, flags, 2, 2, "shards")
  _assert_bitwise(states[0], states[1])
  for out in outputs:
    # 16 of the 32 files each (every other one), from the process's shard.
    assert "Decoding 16 images" in out and "Decoding 32" not in out
    assert "this process's shard of the data" in out
  meta = checkpointing.read_meta(str(workdir), 2)
  assert meta["num_examples"] == 32 and meta["facts"]["data_shards"] == 2
  assert os.path.exists(run_logs.sample_path(str(workdir), 2))
  records = run_logs.read_metrics(str(workdir))
  assert [r["step"] for r in records if "eval/fid" in r] == [2]
  best = json.loads((workdir / "eval" / "best.json").read_text())
  assert best["step"] == 2 and len(best["evaluations"]) == 1
  # Resuming with another process count would change the batches: refused.
  (code, out), = _launch(
      [["-m", "wgan_jax.main", f"--workdir={workdir}", *flags,
        "--config.num_train_steps=4"]], tmp_path, 4, "resume")
  assert code == 1, out[-3000:]
  assert re.search(r"wgan_jax.main: error: .*the process count of a "
                   r"config.data.shard_by_process run .*: 2 -> 1", out), out
