"""Specification of wgan_jax.distributed: where a process's settings come from.

The connection itself (and its timeout) is tested with real processes in
test_multiprocess.py; these are the pure rules.
"""

import pytest

from wgan_jax import distributed
from wgan_jax import errors

ENV = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
       "JAX_PROCESS_ID": "3"}


def test_nothing_set_is_one_process_and_initializes_nothing():
  assert distributed.resolve(environ={}) is None
  assert distributed.initialize(environ={}) is None
  assert distributed.resolve(num_processes=1, environ={}) is None


def test_the_environment_names_the_run():
  assert distributed.resolve(environ=ENV) == distributed.Settings(
      "10.0.0.1:1234", 4, 3, "environment")


def test_flags_win_over_the_environment_field_by_field():
  settings = distributed.resolve(process_id=1, environ=ENV)
  assert settings == distributed.Settings("10.0.0.1:1234", 4, 1, "flags")
  settings = distributed.resolve("127.0.0.1:99", 2, 0, environ=ENV)
  assert settings == distributed.Settings("127.0.0.1:99", 2, 0, "flags")


def test_in_a_detected_cluster_jax_supplies_what_is_not_given():
  slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NUM_TASKS": "8"}
  assert distributed.detected_cluster(slurm) == "SLURM"
  assert distributed.resolve(environ=slurm) == distributed.Settings(
      None, None, None, "SLURM")
  # A batch script itself is one process, whatever the job's task count.
  assert distributed.resolve(environ={"SLURM_JOB_ID": "7",
                                      "SLURM_NTASKS": "8"}) is None
  tpu = {"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}
  assert distributed.resolve(process_id=2, environ=tpu) == distributed.Settings(
      None, None, 2, "Cloud TPU")
  assert distributed.detected_cluster({"TPU_WORKER_HOSTNAMES": "w0"}) is None


def test_a_partial_setting_outside_a_cluster_names_what_is_missing():
  with pytest.raises(errors.ConfigError,
                     match="needs --num_processes, --process_id too"):
    distributed.resolve(coordinator_address="h:1", environ={})


@pytest.mark.parametrize("kwargs,match", [
    ({"num_processes": 2, "process_id": 2}, "use 0 to 1"),
    ({"num_processes": 0}, "--num_processes=0"),
])
def test_impossible_settings_are_refused(kwargs, match):
  with pytest.raises(errors.ConfigError, match=match):
    distributed.resolve(coordinator_address="h:1", environ={}, **kwargs)


def test_a_non_integer_in_the_environment_is_named():
  with pytest.raises(errors.ConfigError, match="JAX_NUM_PROCESSES='two'"):
    distributed.resolve(environ=dict(ENV, JAX_NUM_PROCESSES="two"))


def test_a_coordinator_timeout_is_a_user_error_that_exits_at_once():
  assert issubclass(distributed.CoordinatorError, errors.UserError)
  assert distributed.CoordinatorError.exit_immediately
