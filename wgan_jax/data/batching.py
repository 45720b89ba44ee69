"""Batches as a pure function of the step: `batch_indices`.

Batches are not an iterator with state: `batch_indices(N, seed, step, ...)`
gives the example indices of generator step `step`, so a run resumed from a
checkpoint at step k sees exactly the batches of an uninterrupted run.
"""

import functools

import numpy as np

from wgan_jax.data.dataset import STREAM_EPOCH
from wgan_jax.data.dataset import rng


@functools.lru_cache(maxsize=16)
def epoch_permutation(num_examples: int, seed: int, epoch: int,
                      shard: tuple[int, int] = (0, 1)) -> np.ndarray:
  """Read-only int32 [num_examples]: the example order of epoch `epoch`.

  Shard (index, count) with count > 1 has a stream of its own; (0, 1) is
  the whole dataset's.
  """
  more = () if shard[1] == 1 else tuple(shard)
  order = rng(seed, STREAM_EPOCH, epoch, *more).permutation(num_examples)
  order = order.astype(np.int32)
  order.flags.writeable = False  # Shared by every caller through the cache.
  return order


def batch_indices(num_examples: int, seed: int, step: int, n_critic: int,
                  batch_size: int,
                  shard: tuple[int, int] = (0, 1)) -> np.ndarray:
  """Example indices for generator step `step`; a pure function of its args.

  The examples form an infinite stream, the concatenation of one permutation
  per epoch (epoch e: `np.random.default_rng(np.random.SeedSequence(seed,
  spawn_key=(0, e))).permutation(num_examples)`). Step `step` takes positions
  [step * n_critic * batch_size, (step + 1) * n_critic * batch_size), so
  batches cross epoch boundaries and a resumed run continues exactly.

  With shard = (index, count), count > 1 (config.data.shard_by_process), the
  indices are into that shard of num_examples examples, from a stream of its
  own (spawn_key=(0, e, index, count)): each process draws its part of the
  global batch from the examples it holds.

  Returns:
    int32 [n_critic, batch_size]: row i is the batch of critic update i.
  """
  num_examples, seed, step = int(num_examples), int(seed), int(step)
  n_critic, batch_size = int(n_critic), int(batch_size)
  if num_examples < 1 or step < 0 or n_critic < 1 or batch_size < 1:
    raise ValueError(
        f"batch_indices needs num_examples, n_critic, batch_size >= 1 and "
        f"step >= 0; got {num_examples}, {n_critic}, {batch_size}, {step}")
  per_step = n_critic * batch_size
  start, stop = step * per_step, (step + 1) * per_step
  parts = []
  for epoch in range(start // num_examples, (stop - 1) // num_examples + 1):
    offset = epoch * num_examples
    order = epoch_permutation(num_examples, seed, epoch, tuple(shard))
    parts.append(order[max(start - offset, 0):min(stop - offset,
                                                    num_examples)])
  return np.concatenate(parts).reshape(n_critic, batch_size)
