"""Device mesh and shardings for data parallelism with `jax.jit`.

One 1-D mesh axis, 'data', over all devices. Train state is replicated;
batches are split along their batch axis. `jax.jit` with these NamedShardings
partitions the one global computation (GSPMD), so a batch-norm mean, a loss
mean or a gradient is over the global batch and the result does not depend on
the number of devices; `pmap` code had to write those cross-device reductions
by hand (`lax.pmean`) and kept a per-device copy of the state.

With several processes (multi-host) the mesh spans every process's devices,
ordered by process, so each process owns one contiguous block of the batch
axis (`local_batch_slice`) and feeds exactly that block. An array that spans
processes cannot be read with np.asarray: `to_host` reads it.
"""

from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D ('data',) mesh over `devices` (default: all devices).

  Devices are ordered by (process, id): each process's devices are one
  contiguous block of the mesh, hence of every batch split over it.
  """
  devices = jax.devices() if devices is None else list(devices)
  devices = sorted(devices, key=lambda d: (d.process_index, d.id))
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


def on_all_processes(flag: bool) -> bool:
  """Whether `flag` holds on every process (a collective with several)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def local_batch_slice(sharding: NamedSharding, global_shape: Sequence[int],
                      batch_axis: int = 0) -> slice:
  """The block of `batch_axis` that this process's devices hold.

  What this process passes to jax.make_array_from_process_local_data for an
  array of `global_shape` split by `sharding` (all of it with one process).

  Raises:
    ValueError: the block is not contiguous (a mesh not built by make_mesh).
  """
  size = global_shape[batch_axis]
  rows = set()
  for index in sharding.addressable_devices_indices_map(
      tuple(global_shape)).values():
    rows.update(range(*index[batch_axis].indices(size)))
  start, stop = min(rows), max(rows) + 1
  if len(rows) != stop - start:
    raise ValueError(f"process {jax.process_index()} holds rows {sorted(rows)} "
                     f"of axis {batch_axis}, not one block: build the mesh "
                     "with parallel.make_mesh")
  return slice(start, stop)


def to_host(tree: Any) -> Any:
  """numpy copies of a pytree of arrays (whole arrays, on every process).

  A replicated array is read from this process's own copy, with no
  communication (so process 0 alone may fetch the replicated train state).
  An array split over the devices of several processes is gathered from all
  of them: a collective, which every process must call.
  """
  def fetch(x):
    if (isinstance(x, jax.Array) and not x.is_fully_addressable
        and not x.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
  return jax.tree.map(fetch, tree)

