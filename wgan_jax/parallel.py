"""Device mesh and shardings for data parallelism with `jax.jit`.

One 1-D mesh axis, 'data', over all devices. Train state is replicated;
batches are split along their batch axis. `jax.jit` with these NamedShardings
partitions the one global computation (GSPMD), so a batch-norm mean, a loss
mean or a gradient is over the global batch and the result does not depend on
the number of devices; `pmap` code had to write those cross-device reductions
by hand (`lax.pmean`) and kept a per-device copy of the state.
"""

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
  """Split along `batch_axis` over the 'data' axis; other axes whole."""
  return NamedSharding(mesh, PartitionSpec(*([None] * batch_axis), DATA_AXIS))


def is_primary() -> bool:
  """Whether this process writes logs, samples and evaluations (process 0)."""
  return jax.process_index() == 0
