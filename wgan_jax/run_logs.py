"""Training logs: TensorBoard event files plus a JSON-lines copy for plots.

    WORKDIR/tensorboard/events.out.tfevents.*   scalars and sample images
    WORKDIR/metrics.jsonl                       {"step": s, "name": value, ...}
    WORKDIR/samples/step_<step>.png             fixed-noise sample grids

The JSON-lines file is what `python -m wgan_jax.generate losses` plots: it
needs no TensorFlow to read. Only process 0 writes.
"""

import json
import math
import os
from typing import Any, Mapping

import numpy as np
from absl import logging
from etils import epath

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"


def sample_path(workdir: str, step: int) -> str:
  """WORKDIR/samples/step_<step>.png: the fixed-noise grid after `step` steps."""
  return os.path.join(workdir, SAMPLES_DIR, f"step_{step:08d}.png")


class MetricWriter:
  """Writes scalars and images of a run (a no-op on processes other than 0)."""

  def __init__(self, workdir: str, enabled: bool = True):
    self._enabled = enabled
    self._tb = None
    self._jsonl = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      epath.Path(workdir).mkdir(parents=True, exist_ok=True)
      self._tb = SummaryWriter(os.path.join(workdir, TENSORBOARD_DIR))
      self._jsonl = epath.Path(workdir, METRICS_FILE).open("a")

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._enabled:
      return
    for name, value in scalars.items():
      self._tb.add_scalar(name, float(value), step)
    record = {"step": int(step)}
    record.update({k: _json_number(v) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """image: uint8 [H, W, C] with C in {1, 3}."""
    if self._enabled:
      self._tb.add_image(name, np.asarray(image), step, dataformats="HWC")

  def flush(self) -> None:
    if self._enabled:
      self._tb.flush()

  def close(self) -> None:
    if self._enabled:
      self._tb.close()
      self._jsonl.close()


def _json_number(value: Any) -> float | None:
  value = float(value)
  return value if math.isfinite(value) else None


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """All records of WORKDIR/metrics.jsonl, by step; a resumed run's later record wins."""
  path = epath.Path(workdir, METRICS_FILE)
  if not path.exists():
    raise FileNotFoundError(f"No {METRICS_FILE} in {workdir}: is it the "
                            "--workdir of a training run?")
  by_step: dict[int, dict[str, Any]] = {}
  for line in path.read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      by_step.setdefault(record["step"], {}).update(record)
  return [by_step[s] for s in sorted(by_step)]


def log_scalars(step: int, scalars: Mapping[str, float]) -> None:
  """One absl INFO line with every scalar."""
  text = ", ".join(f"{k}={float(v):.5g}" for k, v in sorted(scalars.items()))
  logging.info("step %d: %s", step, text)
