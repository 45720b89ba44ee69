"""What the per-step preemption check of a multi-process run costs.

Run one copy per process (here 2 on localhost):

    for i in 0 1; do XLA_FLAGS=--xla_force_host_platform_device_count=2 \
      python experiments/preemption_sync_cost.py --process_id=$i & done; wait

Each process times `multihost_utils.reached_preemption_sync_point(step)`
(train._Preemption.stop_after calls it after every step when there are
several processes) over --steps steps, each step a small jitted all-reduce
over every device of both processes so that the processes advance
together as in training, and prints one JSON line: the check's median and
mean microseconds, and the step's.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from wgan_jax import distributed
from wgan_jax import parallel


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--process_id", type=int, required=True)
  p.add_argument("--num_processes", type=int, default=2)
  p.add_argument("--coordinator_address", default="127.0.0.1:12421")
  p.add_argument("--steps", type=int, default=2000)
  args = p.parse_args()
  distributed.initialize(args.coordinator_address, args.num_processes,
                         args.process_id, timeout_s=60)
  mesh = parallel.make_mesh()
  x = jax.device_put(np.ones((len(jax.devices()), 1024), np.float32),
                     parallel.batch_sharded(mesh))
  step_fn = jax.jit(lambda x: x + jnp.sum(x) * 1e-9,
                    out_shardings=parallel.batch_sharded(mesh))
  x = step_fn(x).block_until_ready()
  check, step = [], []
  for i in range(args.steps):
    t0 = time.perf_counter()
    x = step_fn(x)
    x.block_until_ready()
    t1 = time.perf_counter()
    stop = multihost_utils.reached_preemption_sync_point(i + 1)
    t2 = time.perf_counter()
    step.append(t1 - t0)
    check.append(t2 - t1)
    assert not stop
  print(json.dumps({
      "process": jax.process_index(), "processes": jax.process_count(),
      "devices": len(jax.devices()), "steps": args.steps,
      "check_us_median": 1e6 * float(np.median(check)),
      "check_us_mean": 1e6 * float(np.mean(check)),
      "step_us_median": 1e6 * float(np.median(step)),
      "jax": jax.__version__}))


if __name__ == "__main__":
  main()
