"""Trains one config in float32 and in bfloat16 and plots both loss curves.

    python experiments/compare_precision.py --config=configs/toy_wgangp.py \
        --workdir=/tmp/precision --steps=1000

Both runs share everything but `config.model.dtype` (the dtype of
convolutions and matmuls; the gradient penalty's norm is float32 in both).
Writes WORKDIR/{float32,bfloat16}/ (ordinary run directories) and
WORKDIR/precision.png, and prints one JSON line per run with its final
logged metrics and wall time.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wgan_jax import images  # noqa: E402  pylint: disable=g-import-not-at-top
from wgan_jax import plots  # noqa: E402
from wgan_jax import run_logs  # noqa: E402
from wgan_jax import train  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config.", lock_config=True)
flags.DEFINE_string("workdir", None, "Output directory.")
flags.DEFINE_integer("steps", 1000, "Generator steps per run.")
flags.mark_flags_as_required(["config", "workdir"])



def main(argv):
  del argv
  records = {}
  for dtype in ("float32", "bfloat16"):
    config = FLAGS.config.copy_and_resolve_references()
    config.model.dtype = dtype
    config.num_train_steps = FLAGS.steps
    workdir = os.path.join(FLAGS.workdir, dtype)
    start = time.perf_counter()
    train.train_and_evaluate(config, workdir)
    seconds = time.perf_counter() - start
    records[dtype] = run_logs.read_metrics(workdir)
    final = {k: v for k, v in records[dtype][-1].items() if k in plots.LOSS_KEYS}
    print(json.dumps({"dtype": dtype, "steps": FLAGS.steps,
                      "wall_s": round(seconds, 1), **final}), flush=True)
  path = os.path.join(FLAGS.workdir, "precision.png")
  images.save_png(path, plots.to_image(plots.plot_runs(records)))
  print(json.dumps({"plot": path}), flush=True)


if __name__ == "__main__":
  app.run(main)
