"""Joining a multi-process run (TPU pod slices, GPU clusters): `initialize`.

Every process of a multi-host run executes the same command and, before any
JAX computation, connects to the coordinator (process 0) with
`jax.distributed.initialize`. Where the settings come from, first match
wins, field by field:

  1. the arguments (the --coordinator_address, --num_processes and
     --process_id flags of `wgan_jax.main` and `wgan_jax.evaluate`);
  2. JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
  3. JAX's own cluster detection, used only where a cluster is detected: a
     Cloud TPU VM, an `srun` step of more than one task (SLURM), Open MPI
     (`mpirun`);
  4. none of these: one process, nothing is initialized (a laptop, one GPU
     host, a single-host TPU VM need nothing).

A coordinator that cannot be reached (or, on process 0, processes that never
connect) within `timeout_s` is a `CoordinatorError`: one line naming the
address and the fix, instead of the abort of JAX's runtime.

`check_shared_directory` refuses a --workdir that is not one directory seen
by every process (checkpoints are written and found collectively).
"""

import dataclasses
import os
import threading
from typing import Mapping

import jax
import numpy as np
from etils import epath
from jax.experimental import multihost_utils

from wgan_jax import errors

ADDRESS_ENV = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"
# jax.distributed.initialize's own default: TPU pod workers can start minutes
# apart.
DEFAULT_TIMEOUT_S = 300
# JAX's runtime aborts the process at its own deadline; ours comes first.
_JAX_DEADLINE_MARGIN_S = 30


class CoordinatorError(errors.UserError, RuntimeError):
  """The processes of a run could not connect within the timeout."""
  # JAX's half-connected runtime logs its teardown (or aborts) when Python
  # exits normally: the command line leaves at once after the one line.
  exit_immediately = True


@dataclasses.dataclass(frozen=True)
class Settings:
  """How this process joins the run; None fields are left to JAX's detection."""
  coordinator_address: str | None
  num_processes: int | None
  process_id: int | None
  source: str  # 'flags', 'environment', or the detected cluster


def _int(value: str, name: str) -> int:
  try:
    return int(value)
  except ValueError:
    raise errors.ConfigError(f"{name}={value!r} is not an integer.") from None


def detected_cluster(environ: Mapping[str, str] = os.environ) -> str | None:
  """The multi-process environment JAX can configure itself from, if any."""
  # Set inside `srun` steps only: a batch script's own step is one process.
  if int(environ.get("SLURM_STEP_NUM_TASKS", "") or 1) > 1:
    return "SLURM"
  if "OMPI_MCA_orte_hnp_uri" in environ:
    return "Open MPI"
  if "," in environ.get("TPU_WORKER_HOSTNAMES", ""):
    return "Cloud TPU"
  try:  # JAX's own test: libtpu and a TPU device present.
    from jax._src.clusters import cloud_tpu_cluster  # pylint: disable=g-import-not-at-top
    if cloud_tpu_cluster.running_in_cloud_tpu_vm:
      return "Cloud TPU"
  except (ImportError, AttributeError):
    pass
  return None


def resolve(coordinator_address: str | None = None,
            num_processes: int | None = None, process_id: int | None = None,
            environ: Mapping[str, str] = os.environ) -> Settings | None:
  """The settings of this process (see the module docstring); None: one process.

  Raises:
    errors.ConfigError: settings that name more than one process but not
      all three fields, outside a cluster JAX can detect; a bad value.
  """
  given = (coordinator_address, num_processes, process_id) != (None,) * 3
  source = "flags" if given else "environment"
  address = coordinator_address or environ.get(ADDRESS_ENV) or None
  if num_processes is None and environ.get(NUM_PROCESSES_ENV):
    num_processes = _int(environ[NUM_PROCESSES_ENV], NUM_PROCESSES_ENV)
  if process_id is None and environ.get(PROCESS_ID_ENV):
    process_id = _int(environ[PROCESS_ID_ENV], PROCESS_ID_ENV)
  if num_processes is not None and num_processes < 1:
    raise errors.ConfigError(f"--num_processes={num_processes}: use >= 1.")
  if num_processes is not None and process_id is not None and not (
      0 <= process_id < num_processes):
    raise errors.ConfigError(
        f"--process_id={process_id} with --num_processes={num_processes}: "
        f"use 0 to {num_processes - 1}, one per process.")
  if num_processes == 1:
    return None
  fields = (address, num_processes, process_id)
  if None not in fields:
    return Settings(address, num_processes, process_id, source)
  cluster = detected_cluster(environ)
  if cluster is not None:
    return Settings(address, num_processes, process_id, cluster)
  if fields == (None,) * 3:
    return None
  missing = [name for name, value in zip(
      ("--coordinator_address", "--num_processes", "--process_id"), fields)
             if value is None]
  raise errors.ConfigError(
      f"a multi-process run needs {', '.join(missing)} too (or "
      f"{ADDRESS_ENV}, {NUM_PROCESSES_ENV}, {PROCESS_ID_ENV}): no cluster "
      "(Cloud TPU, SLURM, Open MPI) was detected to supply them.")


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               timeout_s: int = DEFAULT_TIMEOUT_S,
               environ: Mapping[str, str] = os.environ) -> Settings | None:
  """Joins the multi-process run this process belongs to, if any.

  Call once, before any JAX computation. Returns the settings used (None: a
  single process; nothing was done).

  Raises:
    errors.ConfigError: see `resolve`.
    CoordinatorError: not connected within `timeout_s` seconds.
  """
  settings = resolve(coordinator_address, num_processes, process_id, environ)
  if settings is None:
    return None
  failure: list[BaseException] = []

  def connect():
    try:
      jax.distributed.initialize(
          settings.coordinator_address, settings.num_processes,
          settings.process_id,
          initialization_timeout=timeout_s + _JAX_DEADLINE_MARGIN_S)
    except BaseException as e:  # pylint: disable=broad-except
      failure.append(e)

  # JAX's runtime waits in C++ and aborts the process at its deadline, so
  # the wait happens in a thread and the timeout is ours.
  thread = threading.Thread(target=connect, name="jax-distributed-initialize",
                            daemon=True)
  thread.start()
  thread.join(timeout_s)
  if thread.is_alive():
    raise CoordinatorError(_timeout_message(settings, timeout_s))
  if failure:
    raise failure[0]
  return settings


def _timeout_message(settings: Settings, timeout_s: int) -> str:
  address = settings.coordinator_address or "(detected)"
  pid = "?" if settings.process_id is None else settings.process_id
  count = "?" if settings.num_processes is None else settings.num_processes
  if settings.process_id == 0:
    fix = ("the other processes did not connect: start the same command on "
           "every host (Cloud TPU: `gcloud compute tpus tpu-vm ssh ... "
           "--worker=all`) with the same --num_processes and their own "
           "--process_id")
  else:
    fix = (f"check that process 0 runs the same command, that {address} is "
           "its host and a free port, reachable from this host (firewall)")
  return (f"process {pid} of {count} could not join the run at coordinator "
          f"{address} within {timeout_s} s ({settings.source}): {fix}; "
          "raise --distributed_timeout if hosts start late.")


def check_shared_directory(path: str, flag: str = "--workdir") -> None:
  """Refuses a `path` that is not the same directory on every process.

  Process 0 writes a file there, every process looks for it. A collective:
  every process calls this, with its own value of `path`. A workdir on each
  host's own disk would otherwise let processes restore different steps
  (and wait for each other forever).

  Raises:
    errors.ConfigError: some process does not see process 0's file.
  """
  if jax.process_count() == 1:
    return
  token = int(multihost_utils.broadcast_one_to_all(
      np.frombuffer(os.urandom(8), np.int64)[0] & 0x7FFFFFFFFFFFFFFF))
  marker = epath.Path(path) / f".process_0_was_here_{token:016x}"
  if jax.process_index() == 0:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("wgan_jax: a check that every process sees this "
                      "directory; deleted at once.\n")
  multihost_utils.sync_global_devices("wgan_jax shared directory: written")
  seen = multihost_utils.process_allgather(np.asarray(marker.exists()))
  multihost_utils.sync_global_devices("wgan_jax shared directory: looked")
  if jax.process_index() == 0:
    marker.unlink()
  blind = [int(i) for i in np.flatnonzero(~np.asarray(seen))]
  if blind:
    raise errors.ConfigError(
        f"{flag}={path} is not one directory shared by all processes: "
        f"process(es) {blind} do not see what process 0 writes there. Give "
        "every process the same path on a filesystem that every host mounts "
        "(a gcsfuse mount of a bucket, NFS/Filestore): checkpoints are "
        "written and found collectively.")
