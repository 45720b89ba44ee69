"""Command line entry point: parses flags and calls train.train_and_evaluate.

    python -m wgan_jax.main --config=configs/anime_wgangp.py --workdir=/tmp/anime
    python -m wgan_jax.main --config=configs/fashion_mnist_wgangp.py:smoke --workdir=/tmp/smoke
    python -m wgan_jax.main --config=configs/anime_wgan.py --workdir=DIR --config.batch_size=32

On a TPU pod slice or a GPU cluster every process runs the same command;
Cloud TPU, SLURM (`srun`) and Open MPI are detected, elsewhere pass
--coordinator_address=HOST:PORT --num_processes=N --process_id=I (or set
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID): see
wgan_jax/distributed.py and experiments/tpu/README.md.
"""

import logging as std_logging
import os

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from wgan_jax import distributed
from wgan_jax import errors
from wgan_jax import train

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
config_flags.DEFINE_config_file(
    "config", None, "Training config file (a `get_config()` module), with an "
    "optional `:ARG` passed to get_config.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
flags.DEFINE_string(
    "coordinator_address", None, "Multi-process runs: HOST:PORT of process "
    "0 (default: $JAX_COORDINATOR_ADDRESS, or the detected cluster's).")
flags.DEFINE_integer("num_processes", None, "Multi-process runs: number of "
                     "processes (default: $JAX_NUM_PROCESSES, or detected).")
flags.DEFINE_integer("process_id", None, "Multi-process runs: this process, "
                     "0..num_processes-1 (default: $JAX_PROCESS_ID, or "
                     "detected).")
flags.DEFINE_integer("distributed_timeout", distributed.DEFAULT_TIMEOUT_S,
                     "Seconds to wait for every process to connect.")


class _OnlyOrbaxWarnings(std_logging.Filter):
  """Orbax logs every checkpoint step at INFO; keep its warnings only."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or (
        f"{os.sep}orbax{os.sep}" not in record.pathname)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_OnlyOrbaxWarnings())
  # A user error (bad config, missing data, refused resume, an unreachable
  # coordinator) is one line.
  with errors.exit_on_user_error("wgan_jax.main", logging.get_verbosity()):
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id, FLAGS.distributed_timeout)
    logging.info("JAX devices: %s (process %d of %d)", jax.devices(),
                 jax.process_index(), jax.process_count())
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
