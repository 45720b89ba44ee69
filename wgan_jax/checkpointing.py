"""Orbax checkpoints of a run: the train state and what is needed to rebuild it.

Layout (one folder per saved generator step, written atomically by Orbax):

    WORKDIR/checkpoints/<step>/state/   the TrainState pytree (both networks'
                                        params and batch stats, both optimizer
                                        states, step)
    WORKDIR/checkpoints/<step>/meta/    JSON: the config, the per-example data
                                        shape, the dataset's class names

Saves are asynchronous (training continues while the arrays are written) and
every process of a multi-host run takes part, as Orbax requires.
"""

from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from wgan_jax import presets

CHECKPOINT_DIR = "checkpoints"


def checkpoint_dir(workdir: str) -> epath.Path:
  return epath.Path(workdir) / CHECKPOINT_DIR


class Checkpointer:
  """Saves and restores train states under WORKDIR/checkpoints."""

  def __init__(self, workdir: str, max_to_keep: int = 3,
               asynchronous: bool = True):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True,
        enable_async_checkpointing=asynchronous)
    self._manager = ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    """Starts writing `state` and `meta` as checkpoint `step` (returns before it is done)."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)),
                       force=True)

  def restore(self, abstract_state: Any,
              step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(state, meta) of checkpoint `step` (default: latest).

    Args:
      abstract_state: a pytree of jax.ShapeDtypeStruct (with shardings) like
        the saved state; arrays are restored onto those shardings.
    """
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            abstract_state,
            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state)),
        meta=ocp.args.JsonRestore()))
    return restored.state, restored.meta

  def wait(self) -> None:
    """Blocks until every started save is on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def steps(workdir: str) -> list[int]:
  """The saved steps of a run, ascending (empty when there are none)."""
  directory = checkpoint_dir(workdir)
  if not directory.exists():
    return []
  return sorted(int(p.name) for p in directory.iterdir()
                if p.name.isdigit() and (p / "meta").exists())


def resolve_step(workdir: str, step: int | None) -> int:
  """`step`, or the latest; a clear error naming what exists otherwise."""
  saved = steps(workdir)
  if not saved:
    raise FileNotFoundError(
        f"No checkpoint in {checkpoint_dir(workdir)}: train first with "
        f"`python -m wgan_jax.main --config=... --workdir={workdir}`.")
  if step is None:
    return saved[-1]
  if step not in saved:
    raise FileNotFoundError(f"No checkpoint for step {step} in "
                            f"{checkpoint_dir(workdir)}; saved steps: {saved}.")
  return step


def read_meta(workdir: str, step: int | None = None) -> dict[str, Any]:
  """The JSON metadata of a checkpoint (default: latest), without any arrays."""
  step = resolve_step(workdir, step)
  with ocp.CheckpointManager(checkpoint_dir(workdir),
                             item_names=("state", "meta")) as manager:
    return manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta


def restore_subtree(workdir: str, abstract_subtree: dict[str, Any],
                    step: int | None = None) -> dict[str, Any]:
  """Restores only some fields of a saved TrainState, e.g. the generator's.

  Args:
    abstract_subtree: {field name: abstract pytree}, e.g.
      {'generator_params': ..., 'generator_batch_stats': ...}.
  """
  step = resolve_step(workdir, step)
  with ocp.CheckpointManager(checkpoint_dir(workdir),
                             item_names=("state", "meta")) as manager:
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
            abstract_subtree,
            restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_subtree),
            partial_restore=True))).state


def config_from_meta(meta: dict[str, Any]) -> ml_collections.ConfigDict:
  """The run's config as saved (JSON lists become tuples again).

  Model fields added to the presets after the run was saved take their
  preset defaults, so older checkpoints still load.
  """
  def tuples(x):
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    return x
  config = ml_collections.ConfigDict(tuples(meta["config"]))
  saved_model = config.model.to_dict()
  model = presets.model_config(saved_model.get("name", "dcgan"))
  model.update(saved_model)
  config.model = model
  return config

