"""Command line entry point: parses flags and calls train.train_and_evaluate.

    python -m wgan_jax.main --config=configs/anime_wgangp.py --workdir=/tmp/anime
    python -m wgan_jax.main --config=configs/fashion_mnist_wgangp.py:smoke --workdir=/tmp/smoke
    python -m wgan_jax.main --config=configs/anime_wgan.py --workdir=DIR --config.batch_size=32
"""

import logging as std_logging
import os

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from wgan_jax import errors
from wgan_jax import train

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
config_flags.DEFINE_config_file(
    "config", None, "Training config file (a `get_config()` module), with an "
    "optional `:ARG` passed to get_config.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


class _OnlyOrbaxWarnings(std_logging.Filter):
  """Orbax logs every checkpoint step at INFO; keep its warnings only."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.WARNING or (
        f"{os.sep}orbax{os.sep}" not in record.pathname)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_OnlyOrbaxWarnings())
  # On Cloud TPU pods and multi-GPU clusters every process runs this command;
  # initialize() finds the coordinator from the environment there.
  if _is_multiprocess_environment():
    jax.distributed.initialize()
  logging.info("JAX devices: %s (process %d of %d)", jax.devices(),
               jax.process_index(), jax.process_count())
  # A user error (bad config, missing data, refused resume) is one line.
  with errors.exit_on_user_error("wgan_jax.main", logging.get_verbosity()):
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


def _is_multiprocess_environment() -> bool:
  return any(v in os.environ for v in (
      "JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS"))


if __name__ == "__main__":
  app.run(main)
