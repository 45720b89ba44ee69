"""wgan_jax.data.batching: batches as a pure function of the step."""

import numpy as np
import pytest

from wgan_jax import data
from wgan_jax.data import batching


def stream(num_examples, seed, steps, n_critic, batch_size) -> np.ndarray:
  return np.concatenate([
      data.batch_indices(num_examples, seed, k, n_critic, batch_size).ravel()
      for k in range(steps)])


def test_every_epoch_visits_every_example_exactly_once():
  n = 37  # Not a multiple of the 20 examples per step: batches span epochs.
  order = stream(n, seed=0, steps=10, n_critic=5, batch_size=4)

  for epoch in range(len(order) // n):
    np.testing.assert_array_equal(np.sort(order[epoch * n:(epoch + 1) * n]),
                                  np.arange(n))
  assert not np.array_equal(order[:n], order[n:2 * n])  # Reshuffled.


def test_a_step_computed_cold_equals_the_same_step_after_all_earlier_ones():
  in_order = [data.batch_indices(50, 7, k, 5, 4) for k in range(12)]

  for k in (0, 3, 11):
    batching.epoch_permutation.cache_clear()  # As in a freshly resumed process.
    np.testing.assert_array_equal(data.batch_indices(50, 7, k, 5, 4),
                                  in_order[k])


def test_a_dataset_smaller_than_one_step_still_gives_full_epochs():
  batches = data.batch_indices(3, seed=1, step=2, n_critic=5, batch_size=4)

  assert batches.shape == (5, 4) and batches.dtype == np.int32
  order = stream(3, seed=1, steps=3, n_critic=5, batch_size=4)
  for epoch in range(len(order) // 3):
    assert sorted(order[3 * epoch:3 * epoch + 3]) == [0, 1, 2]


def test_batches_depend_on_the_seed_and_the_step():
  a = data.batch_indices(1000, 0, 5, 5, 64)
  assert not np.array_equal(data.batch_indices(1000, 1, 5, 5, 64), a)
  assert not np.array_equal(data.batch_indices(1000, 0, 6, 5, 64), a)
  assert a.min() >= 0 and a.max() < 1000


def test_editing_returned_indices_does_not_change_later_batches():
  a = data.batch_indices(100, 0, 0, 1, 100)
  expected = a.copy()
  a[:] = 0

  np.testing.assert_array_equal(data.batch_indices(100, 0, 0, 1, 100),
                                expected)


@pytest.mark.parametrize("args", [
    (0, 0, 0, 5, 4), (10, 0, -1, 5, 4), (10, 0, 0, 0, 4), (10, 0, 0, 5, 0)])
def test_batch_indices_rejects_invalid_arguments(args):
  with pytest.raises(ValueError):
    data.batch_indices(*args)


def test_shard_0_of_1_is_the_whole_datasets_stream():
  for step in range(5):
    np.testing.assert_array_equal(
        data.batch_indices(37, 3, step, 2, 8, shard=(0, 1)),
        data.batch_indices(37, 3, step, 2, 8))


def test_each_shard_draws_its_own_stream_over_its_own_examples():
  # Two shards of 19 and 18 examples, 4 of each global batch of 8 per shard.
  a = [data.batch_indices(19, 3, k, 2, 4, shard=(0, 2)) for k in range(10)]
  b = [data.batch_indices(18, 3, k, 2, 4, shard=(1, 2)) for k in range(10)]
  assert all(x.shape == (2, 4) and x.max() < 19 for x in a)
  assert all(x.max() < 18 for x in b)
  # Every example of a shard once per epoch of the shard.
  np.testing.assert_array_equal(np.sort(np.concatenate(a).ravel()[:19]),
                                np.arange(19))
  assert not np.array_equal(a[0], data.batch_indices(19, 3, 0, 2, 4))
  # A pure function of its arguments, as without shards.
  np.testing.assert_array_equal(a[7], data.batch_indices(19, 3, 7, 2, 4,
                                                         shard=(0, 2)))
