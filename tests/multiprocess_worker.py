"""One process of a multi-process test run: `wgan_jax.main`, then a dump.

    python tests/multiprocess_worker.py --config=... --workdir=... \
        --dump=STATE.npz [--coordinator_address=... --num_processes=N \
        --process_id=I] [--config.FIELD=VALUE ...]

Trains exactly as `python -m wgan_jax.main` does (same flags), then writes
this process's copy of the final train state to --dump: the leaves of
parallel.to_host(state) as arr_0, arr_1, ... in tree order, so that a test
can compare what every process holds.
"""

import jax
import numpy as np
from absl import app
from absl import flags

from wgan_jax import distributed
from wgan_jax import errors
from wgan_jax import main as wgan_main  # Defines --config, --workdir, ...
from wgan_jax import parallel
from wgan_jax import train

FLAGS = flags.FLAGS
flags.DEFINE_string("dump", None, "Where to write this process's state.")
flags.mark_flags_as_required(["dump"])


def main(argv):
  del argv
  with errors.exit_on_user_error("multiprocess_worker"):
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                           FLAGS.process_id, FLAGS.distributed_timeout)
    state = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  np.savez(FLAGS.dump, *jax.tree.leaves(parallel.to_host(state)))


if __name__ == "__main__":
  del wgan_main  # Imported for its flags.
  app.run(main)
