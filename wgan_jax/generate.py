"""Pictures of a trained run: samples, latent walks, training GIF, curves.

Usage:
  python -m wgan_jax.generate --workdir=DIR --out=OUT [--step=S] [flags] MODE

MODE (flags that apply):
  grid         --num samples from noise --seed as one grid [--columns]
               [--truncation]; --individual also writes each sample.
  sweep        two components of one z (--seed) moved by offsets -1 .. +1 on
               an 11 x 11 grid: rows move --dims[0], columns --dims[1]
               (default: first and last); the middle cell is z itself.
  interpolate  --rows pairs of noise vectors (--seed_a/--seed_b, or .npy
               files --z_a/--z_b of shape [z_dim] or [rows, z_dim]), each as a
               linear row then a spherical row of --columns points (default
               10), both endpoints included.
  gif          the fixed-noise grids saved during training
               (DIR/samples/step_*.png), in step order, step written above
               each frame [--duration_ms] [--every k: every k-th grid].
  losses       the curves of DIR/metrics.jsonl: critic loss, Wasserstein
               estimate, gradient penalty, generator loss, eval/* (FID, ...).
  real         --num real training images (picked by --seed) [--columns] and
               the dataset's mean image, loaded with the run's saved config.
  landscape    2-D toy runs: the critic's value as filled contours under
               real and generated points (the run's fixed noise);
               --all_steps draws every saved checkpoint [--duration_ms for a
               .gif].

OUT is the file to write; its extension must match the mode: .png, .gif
for gif, .png (panels) or .gif (frames) for landscape. With --individual,
OUT is a folder that receives grid.png and sample_0000.png, ...

--step picks the checkpoint (default: the latest) for grid, sweep,
interpolate, real and landscape. A run with an EMA of the generator
(config.ema) is drawn with the average; --raw draws the raw weights.

Class-conditional runs: --label=K makes every image of grid, sweep and
interpolate of class K. Without it, grid draws one row per class (the same
noise down each column, --columns per row, default 8), sweep one row per
class with both --dims moved together from -1 to +1 along the row, and
interpolate one linear row per class between the same two vectors.

Python: run(mode, workdir, out, step=None, **flags) does the same and
returns the written paths.
"""

import math
import os
import re
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags
from absl import logging
from etils import epath

from wgan_jax import checkpointing
from wgan_jax import data as data_lib
from wgan_jax import errors
from wgan_jax import images
from wgan_jax import plots
from wgan_jax import run_logs
from wgan_jax import sampling

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "The training run's --workdir.")
flags.DEFINE_string("out", None, "Output file (.png or .gif, by mode); a "
                    "folder with --individual.")
flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest.")
flags.DEFINE_integer("num", 64, "grid, real: number of images.")
flags.DEFINE_integer("seed", 0, "grid, sweep: noise seed; real: which images.")
flags.DEFINE_integer("columns", None, "grid, real: cells per row (default "
                     "ceil(sqrt(num))); interpolate: points per row "
                     "(default 10).")
flags.DEFINE_bool("individual", False, "grid: also write one PNG per sample; "
                  "--out is then a folder.")
flags.DEFINE_float("truncation", None, "grid, sweep, interpolate: draw z "
                   "from the normal truncated to [-t, t].")
flags.DEFINE_integer("label", None, "grid, sweep, interpolate: the class "
                     "of every image (class-conditional runs); without it "
                     "one row per class.")
flags.DEFINE_bool("raw", False, "grid, sweep, interpolate: the generator's "
                  "raw weights instead of their moving average (runs with "
                  "config.ema).")
flags.DEFINE_list("dims", None, "sweep: the two components of z to vary, "
                  "e.g. 0,99; default: first and last.")
flags.DEFINE_integer("seed_a", 0, "interpolate: seed of the start vectors.")
flags.DEFINE_integer("seed_b", 1, "interpolate: seed of the end vectors.")
flags.DEFINE_string("z_a", None, "interpolate: .npy of the start vectors "
                    "[z_dim] or [rows, z_dim]; replaces --seed_a.")
flags.DEFINE_string("z_b", None, "interpolate: .npy of the end vectors; "
                    "replaces --seed_b.")
flags.DEFINE_integer("rows", None, "interpolate: number of pairs (default 4, "
                     "or the rows of the .npy files).")
flags.DEFINE_bool("all_steps", False, "landscape: every saved checkpoint.")
flags.DEFINE_integer("duration_ms", 300, "gif, landscape .gif: time per frame.")
flags.DEFINE_integer("every", 1, "gif: every k-th saved grid (the last one "
                     "always), for a smaller file.")

SWEEP_OFFSETS = np.linspace(-1.0, 1.0, 11)  # 0 in the middle: z itself
CLASS_ROW_COLUMNS = 8  # default --columns of a grid with a row per class
INTERPOLATION_POINTS = 10  # default --columns of interpolate
INTERPOLATION_PAIRS = 4  # default --rows of interpolate
GRID_FILE = "grid.png"  # in the --individual folder


class ArgumentError(errors.UserError, ValueError):
  """A bad flag or argument; the message names it and the fix."""


def _check_positive(name: str, value: float | None) -> None:
  if value is not None and not value > 0:
    raise ArgumentError(f"--{name} must be > 0, got {value}.")


def _check_extension(mode: str, out: str, allowed: Sequence[str]) -> None:
  if os.path.splitext(out)[1].lower() not in allowed:
    raise ArgumentError(f"--out={out}: {mode} writes {' or '.join(allowed)}; "
                        f"give a path ending in {allowed[0]}.")


def _image_generator(workdir: str, step: int | None, mode: str,
                     label: int | None, raw: bool = False) -> sampling.Generator:
  """The generator of an image run (its EMA unless `raw`), after checking --label."""
  generator = sampling.load_generator(workdir, step, False if raw else None)
  if len(generator.data_shape) != 3:
    raise ArgumentError(
        f"{mode} draws images, but {workdir} is a run on 2-D points "
        f"({generator.config.data.source}); use the landscape mode.")
  if label is not None and not generator.num_classes:
    raise ArgumentError(
        f"--label={label}: {workdir} holds an unconditional generator "
        "(trained without class labels), so it cannot make a chosen class; "
        "leave out --label.")
  if label is not None and not 0 <= label < generator.num_classes:
    raise ArgumentError(
        f"--label={label}: {workdir}'s generator has {generator.num_classes} "
        f"classes; use 0 .. {generator.num_classes - 1} "
        f"({_class_list(generator)}).")
  return generator


def _class_names(generator: sampling.Generator) -> list[str]:
  return list(generator.class_names) or [
      str(k) for k in range(generator.num_classes)]


def _class_list(generator: sampling.Generator) -> str:
  return ", ".join(f"{k}={name}" for k, name in enumerate(
      _class_names(generator)))


def _per_class(generator: sampling.Generator, label: int | None) -> bool:
  """Whether a conditional generator's picture gets one row per class."""
  return bool(generator.num_classes) and label is None


def _noise(generator: sampling.Generator, num: int, seed: int,
           truncation: float | None) -> jax.Array:
  _check_positive("truncation", truncation)
  return sampling.noise(generator, num, seed, truncation)


def _grid(workdir: str, out: str, step: int | None, *, num: int, seed: int,
          columns: int | None, individual: bool, truncation: float | None,
          label: int | None, raw: bool) -> list[str]:
  _check_positive("num", num)
  _check_positive("columns", columns)
  if individual and (os.path.splitext(out)[1].lower()
                     in data_lib.IMAGE_EXTENSIONS):
    raise ArgumentError(f"--out={out}: with --individual, --out is a folder "
                        f"(it receives {GRID_FILE} and one PNG per sample); "
                        "give a folder path, not an image file.")
  if not individual:
    _check_extension("grid", out, (".png",))
  generator = _image_generator(workdir, step, "grid", label, raw)
  if _per_class(generator, label):
    columns = columns or CLASS_ROW_COLUMNS
    z, labels, columns = sampling.class_rows(
        _noise(generator, columns, seed, truncation),
        generator.num_classes)
    samples = sampling.sample(generator, z, labels)
    grid = images.make_grid(samples, columns, _class_names(generator))
  else:
    samples = sampling.sample(generator,
                              _noise(generator, num, seed, truncation), label)
    grid = images.make_grid(samples, columns)
  if not individual:
    images.save_png(out, grid)
    return [out]
  written = [os.path.join(out, GRID_FILE)]
  images.save_png(written[0], grid)
  digits = max(4, len(str(num - 1)))
  for i, image in enumerate(samples):
    written.append(os.path.join(out, f"sample_{i:0{digits}d}.png"))
    images.save_png(written[-1], image)
  return written


def _sweep(workdir: str, out: str, step: int | None, *, seed: int,
           dims: Sequence[int] | None, truncation: float | None,
           label: int | None, raw: bool) -> list[str]:
  _check_extension("sweep", out, (".png",))
  generator = _image_generator(workdir, step, "sweep", label, raw)
  dims = (0, generator.z_dim - 1) if dims is None else tuple(dims)
  z = _noise(generator, 1, seed, truncation)[0]
  try:
    zs = sampling.latent_sweep(z, dims, SWEEP_OFFSETS)
  except ValueError as e:
    raise ArgumentError(f"--dims={','.join(map(str, dims))}: {e}") from None
  size = len(SWEEP_OFFSETS)
  if _per_class(generator, label):
    # The diagonal of the sweep (both components moved together), per class.
    diagonal = zs[np.arange(size), np.arange(size)]
    z_rows, labels, _ = sampling.class_rows(diagonal, generator.num_classes)
    samples = sampling.sample(generator, z_rows, labels)
    grid = images.make_grid(samples, size, _class_names(generator))
    text = (f"seed {seed}: z[{dims[0]}] and z[{dims[1]}] + the same offset, "
            "-1 .. +1 along each row; one row per class")
    images.save_png(out, images.caption(grid, text))
    return [out]
  samples = sampling.sample(generator, zs.reshape(size * size, -1), label)
  grid = images.make_grid(samples, size,
                          row_labels=[f"{v:+.1f}" for v in SWEEP_OFFSETS])
  text = (f"seed {seed}: z[{dims[0]}] + row offset, z[{dims[1]}] + column "
          "offset, -1 .. +1" + ("" if label is None else
                               f"; class {_class_names(generator)[label]}"))
  images.save_png(out, images.caption(grid, text))
  return [out]


def _load_vectors(generator: sampling.Generator, path: str,
                  flag: str) -> np.ndarray:
  """float32 [rows, z_dim] from a .npy of shape [z_dim] or [rows, z_dim]."""
  if not os.path.exists(path):
    raise ArgumentError(f"--{flag}={path}: no such file; give a .npy saved "
                        "with numpy.save.")
  z = np.load(path)
  z = z[None] if z.ndim == 1 else z
  if z.ndim != 2 or z.shape[1] != generator.z_dim or not len(z):
    raise ArgumentError(f"--{flag}={path} holds shape {z.shape}; this run "
                        f"needs [{generator.z_dim}] or [rows, "
                        f"{generator.z_dim}].")
  return z.astype(np.float32)


def _interpolate(workdir: str, out: str, step: int | None, *, seed_a: int,
                 seed_b: int, z_a: str | None, z_b: str | None,
                 rows: int | None, columns: int | None,
                 truncation: float | None, label: int | None,
                 raw: bool) -> list[str]:
  _check_extension("interpolate", out, (".png",))
  _check_positive("rows", rows)
  columns = INTERPOLATION_POINTS if columns is None else columns
  if columns < 2:
    raise ArgumentError(f"--columns={columns}: interpolate needs >= 2 points "
                        "per row (both endpoints).")
  generator = _image_generator(workdir, step, "interpolate", label, raw)
  ends = {flag: _load_vectors(generator, path, flag)
          for flag, path in (("z_a", z_a), ("z_b", z_b)) if path is not None}
  # Files fix the number of pairs; seeds draw that many (default: --rows).
  pairs = rows or INTERPOLATION_PAIRS
  for flag, z in ends.items():
    if rows is not None and len(z) != rows:
      raise ArgumentError(f"--rows={rows} but --{flag} holds {len(z)} "
                          "vectors; leave out --rows or make them agree.")
    pairs = len(z)
  if len({len(z) for z in ends.values()}) > 1:
    raise ArgumentError(f"--z_a holds {len(ends['z_a'])} vectors and --z_b "
                        f"{len(ends['z_b'])}; give the same number.")
  for flag, seed in (("z_a", seed_a), ("z_b", seed_b)):
    if flag not in ends:
      ends[flag] = np.asarray(_noise(generator, pairs, seed, truncation))
  if _per_class(generator, label):
    # One linear path, from the first pair, for every class.
    path = sampling.interpolate(ends["z_a"][0], ends["z_b"][0], columns)
    z_rows, labels, _ = sampling.class_rows(path, generator.num_classes)
    samples = sampling.sample(generator, z_rows, labels)
    images.save_png(out, images.make_grid(samples, columns,
                                          row_labels=_class_names(generator)))
    return [out]
  paths = np.stack([sampling.interpolate(ends["z_a"], ends["z_b"], columns,
                                         method)
                    for method in sampling.INTERPOLATION_METHODS], axis=1)
  samples = sampling.sample(generator, paths.reshape(-1, generator.z_dim),
                            label)
  names = {"linear": "lerp", "spherical": "slerp"}
  labels = [names[m] for m in sampling.INTERPOLATION_METHODS] * pairs
  images.save_png(out, images.make_grid(samples, columns, row_labels=labels))
  return [out]


def _saved_grids(workdir: str) -> list[tuple[int, str]]:
  """(step, path) of the run's fixed-noise sample grids, by step."""
  directory = epath.Path(workdir) / run_logs.SAMPLES_DIR
  found = []
  if directory.exists():
    for path in directory.iterdir():
      match = re.fullmatch(r"step_(\d+)\.png", path.name)
      if match:
        found.append((int(match.group(1)), os.fspath(path)))
  if not found:
    raise ArgumentError(
        f"No sample grids in {directory}: training writes one every "
        "config.sample_every steps (runs on 2-D points write none: use the "
        "landscape mode).")
  return sorted(found)


def _gif(workdir: str, out: str, step: int | None, *,
         duration_ms: int, every: int) -> list[str]:
  del step  # rejected by run()
  _check_extension("gif", out, (".gif",))
  _check_positive("duration_ms", duration_ms)
  _check_positive("every", every)
  saved = _saved_grids(workdir)
  saved = saved[::-1][::every][::-1]  # counted back from the last grid
  frames = [images.read_png(path) for _, path in saved]
  shapes = {f.shape for f in frames}
  if len(shapes) > 1:
    raise ArgumentError(
        f"The grids in {workdir}/{run_logs.SAMPLES_DIR} differ in size "
        f"({sorted(shapes)}): config.num_samples changed on resume; move the "
        "older ones out of the folder to animate the rest.")
  images.save_gif(out, np.stack(frames), [f"step {s}" for s, _ in saved],
                  duration_ms)
  return [out]


def _losses(workdir: str, out: str, step: int | None) -> list[str]:
  del step  # rejected by run()
  _check_extension("losses", out, (".png",))
  records = run_logs.read_metrics(workdir)
  try:
    figure = plots.plot_losses(records, title=os.path.basename(
        os.path.normpath(workdir)))
  except ValueError as e:
    raise ArgumentError(
        f"{workdir}/{run_logs.METRICS_FILE}: {e}") from None
  images.save_png(out, plots.to_image(figure))
  return [out]


def _run_config(workdir: str, step: int | None
                ) -> tuple[ml_collections.ConfigDict, tuple[int, ...]]:
  """(config, per-example data shape) of a run's checkpoint, without arrays."""
  meta = checkpointing.read_meta(workdir, step)
  return checkpointing.config_from_meta(meta), tuple(meta["data_shape"])


def _load_data(workdir: str, config: ml_collections.ConfigDict
               ) -> data_lib.Dataset:
  """The run's dataset, loaded as training did (so its cache is reused)."""
  # The cache folder rule of train.train_and_evaluate.
  cache_dir = config.data.cache_dir or os.path.join(workdir, "data_cache")
  return data_lib.load_dataset(config.data, cache_dir=cache_dir,
                               seed=config.seed)


def _real(workdir: str, out: str, step: int | None, *, num: int, seed: int,
          columns: int | None) -> list[str]:
  _check_extension("real", out, (".png",))
  _check_positive("num", num)
  _check_positive("columns", columns)
  config, data_shape = _run_config(workdir, step)
  if len(data_shape) != 3:
    raise ArgumentError(f"real draws images, but {workdir} is a run on 2-D "
                        f"points ({config.data.source}); the landscape mode "
                        "draws its real points.")
  dataset = _load_data(workdir, config)
  num = min(num, dataset.num_examples)
  picked = np.random.default_rng(seed).choice(dataset.num_examples, num,
                                              replace=False)
  reals = dataset.examples[np.sort(picked)]
  mean = np.round(dataset.examples.mean(axis=0, dtype=np.float64))
  columns = columns or max(1, math.ceil(math.sqrt(num)))
  rows = math.ceil(num / columns)
  # The mean image starts a row of its own, labelled.
  blank = np.full((rows * columns - num,) + reals.shape[1:], images.BACKGROUND,
                  np.uint8)
  cells = np.concatenate([reals, blank, mean[None].astype(np.uint8)])
  labels = ["real"] + [""] * (rows - 1) + ["mean"]
  images.save_png(out, images.make_grid(cells, columns, row_labels=labels))
  return [out]


def _landscape(workdir: str, out: str, step: int | None, *, all_steps: bool,
               duration_ms: int) -> list[str]:
  _check_extension("landscape", out, (".png", ".gif"))
  _check_positive("duration_ms", duration_ms)
  if all_steps and step is not None:
    raise ArgumentError("Give --step or --all_steps, not both.")
  config, data_shape = _run_config(workdir, step)
  if data_shape != (2,):
    raise ArgumentError(
        f"landscape draws a critic over the plane, for runs on 2-D toy data "
        f"({', '.join(data_lib.TOY_SOURCES)}); {workdir} is an image "
        f"run ({config.data.source}): use grid, sweep or interpolate.")
  dataset = _load_data(workdir, config)
  steps = (checkpointing.steps(workdir) if all_steps else
           [checkpointing.resolve_step(workdir, step)])
  modes = data_lib.toy_modes(config.data.source)
  half_width = plots.landscape_half_width(modes)
  reals = dataset.examples[:config.num_samples]
  # The fixed noise of the run: the points training would have drawn.
  z = sampling.fixed_noise(config.seed, config.num_samples, config.model.z_dim)
  lands, fakes = [], []
  for s in steps:
    lands.append(plots.critic_landscape(sampling.load_critic(workdir, s),
                                        half_width))
    fakes.append(sampling.sample(sampling.load_generator(workdir, s), z))
  titles = [f"{config.data.source}, step {s}" for s in steps]
  if out.lower().endswith(".gif"):
    frames = [plots.to_image(plots.plot_landscapes([land], [fake], reals,
                                                   modes, [title]))
              for land, fake, title in zip(lands, fakes, titles)]
    images.save_gif(out, np.stack(frames), duration_ms=duration_ms)
  else:
    images.save_png(out, plots.to_image(
        plots.plot_landscapes(lands, fakes, reals, modes, titles)))
  return [out]


# mode: (function, its flags, whether --step applies)
_MODES: dict[str, tuple[Callable[..., list[str]], tuple[str, ...], bool]] = {
    "grid": (_grid, ("num", "seed", "columns", "individual", "truncation",
                     "label", "raw"), True),
    "sweep": (_sweep, ("seed", "dims", "truncation", "label", "raw"), True),
    "interpolate": (_interpolate, ("seed_a", "seed_b", "z_a", "z_b", "rows",
                                   "columns", "truncation", "label", "raw"),
                    True),
    "gif": (_gif, ("duration_ms", "every"), False),
    "losses": (_losses, (), False),
    "real": (_real, ("num", "seed", "columns"), True),
    "landscape": (_landscape, ("all_steps", "duration_ms"), True),
}
MODES = tuple(_MODES)


def run(mode: str, workdir: str, out: str, step: int | None = None,
        **options: Any) -> list[str]:
  """Writes MODE's picture(s) of the run in `workdir`; returns the paths.

  Args:
    mode: one of MODES.
    workdir: the training run's --workdir.
    out: the output file (or folder for grid with individual=True).
    step: the checkpoint (default: the latest) for modes that load one.
    **options: the mode's flags by name (e.g. num=16, dims=(0, 5)); the
      ones left out take the flags' defaults.

  Raises:
    errors.UserError (ArgumentError, errors.MissingFileError,
      errors.DataError, sampling.IncompatibleCheckpointError): with a
      message that names the bad argument and the fix.
  """
  if mode not in _MODES:
    raise ArgumentError(f"Unknown mode {mode!r}; use one of: "
                        f"{', '.join(MODES)}.")
  function, allowed, uses_step = _MODES[mode]
  for name in options:
    if name not in allowed:
      users = [m for m, (_, names, _) in _MODES.items() if name in names]
      raise ArgumentError(f"--{name} does not apply to {mode}" + (
          f" (it is for {', '.join(users)})." if users else "."))
  if step is not None and not uses_step:
    raise ArgumentError(f"--step does not apply to {mode}: it uses every "
                        "step the run saved.")
  if not epath.Path(workdir).is_dir():
    raise ArgumentError(f"--workdir={workdir} is not a folder; give the "
                        "--workdir of a training run.")
  options = {name: options.get(name, FLAGS[name].default) for name in allowed}
  return function(workdir, out, step, **options)


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError(f"Give exactly one MODE ({', '.join(MODES)}); got "
                         f"{argv[1:] or 'none'}.")
  logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO.
  options = {name: FLAGS[name].value
             for _, names, _ in _MODES.values() for name in names
             if FLAGS[name].present}
  # A user error is one line naming the problem and the fix, not a traceback.
  with errors.exit_on_user_error(f"generate {argv[1]}"):
    if "dims" in options:
      try:
        options["dims"] = [int(d) for d in options["dims"]]
      except ValueError:
        raise ArgumentError(f"--dims={','.join(options['dims'])}: give two "
                            "integers, e.g. --dims=0,99.") from None
    written = run(argv[1], FLAGS.workdir, FLAGS.out, FLAGS.step, **options)
  more = f" and {len(written) - 1} more files" if len(written) > 1 else ""
  print(f"Wrote {written[0]}{more}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "out"])
  app.run(main)
