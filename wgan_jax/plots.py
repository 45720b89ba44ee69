"""Matplotlib figures of a run: training curves and the critic's landscape.

Figures are built with `matplotlib.figure.Figure` and the Agg canvas, not
pyplot, so nothing depends on a display or on global pyplot state.
`to_image` renders a figure to uint8 RGB pixels for `images.save_png` or
`images.save_gif`.
"""

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from wgan_jax import sampling

# The curves of metrics.jsonl worth a panel, in panel order; any `eval/*`
# metric (FID, KID, ...) gets one too.
LOSS_KEYS = ("critic/loss", "critic/wasserstein", "critic/gradient_penalty",
             "generator/loss")
EVAL_PREFIX = "eval/"
STD_SUFFIX = "_std"  # eval/kid_std: a band around eval/kid, not a panel
LANDSCAPE_RESOLUTION = 128  # grid points per axis, as gan_toy.py's N_POINTS
LANDSCAPE_MARGIN = 1.5  # plotted half-width / largest |mode coordinate|
_DPI = 100

Curve = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # steps, values, std


def to_image(figure: Figure) -> np.ndarray:
  """Renders a figure: uint8 [H, W, 3] at its size in inches x dpi."""
  canvas = FigureCanvasAgg(figure)
  canvas.draw()
  return np.array(canvas.buffer_rgba())[..., :3]


def loss_curves(records: Sequence[dict[str, Any]]) -> dict[str, Curve]:
  """The plotted curves of `run_logs.read_metrics` records.

  Returns:
    {name: (steps, values, std)} for every LOSS_KEYS name and `eval/*` name
    present, in panel order: steps int64 [M] of the records that have the
    name, values float64 [M] (a logged non-finite value, JSON null, is NaN),
    std float64 [M] from `<name>_std` (e.g. eval/kid_std), else None. A
    `<name>_std` whose `<name>` is present is no curve of its own.
  """
  present = {k for r in records for k in r}
  names = [k for k in LOSS_KEYS if k in present] + sorted(
      k for k in present if k.startswith(EVAL_PREFIX) and not (
          k.endswith(STD_SUFFIX) and k[:-len(STD_SUFFIX)] in present))
  number = lambda v: np.nan if v is None else v  # noqa: E731
  curves = {}
  for name in names:
    rows = [r for r in records if name in r]
    std = None
    if name + STD_SUFFIX in present:
      std = np.array([number(r.get(name + STD_SUFFIX)) for r in rows],
                     np.float64)
    curves[name] = (np.array([r["step"] for r in rows], np.int64),
                    np.array([number(r[name]) for r in rows], np.float64), std)
  return curves


def plot_losses(records: Sequence[dict[str, Any]], title: str = "") -> Figure:
  """One panel per curve of `loss_curves(records)`, against generator step.

  A curve with a std (eval/kid) gets a +-1 std band.
  """
  curves = loss_curves(records)
  if not curves:
    raise ValueError(f"No curves to plot: the records have none of "
                     f"{', '.join(LOSS_KEYS)} or {EVAL_PREFIX}*.")
  figure, panels = _curve_panels(list(curves), title)
  for (steps, values, std), ax in zip(curves.values(), panels):
    # Markers keep curves logged at only a few steps (eval/*) visible.
    ax.plot(steps, values, marker="." if len(steps) < 50 else None, lw=1)
    if std is not None:
      ax.fill_between(steps, values - std, values + std, alpha=0.3, lw=0)
  return figure


def plot_runs(runs: dict[str, Sequence[dict[str, Any]]], title: str = "") -> Figure:
  """The curves of several runs overlaid, one panel per curve, one line per run.

  Args:
    runs: {run label: `run_logs.read_metrics` records}.
  """
  curves = {label: loss_curves(records) for label, records in runs.items()}
  names = list(dict.fromkeys(n for c in curves.values() for n in c))
  if not names:
    raise ValueError("No curves to plot in any run.")
  figure, panels = _curve_panels(names, title)
  for name, ax in zip(names, panels):
    for label, run in curves.items():
      if name in run:
        steps, values, _ = run[name]
        ax.plot(steps, values, lw=1, label=label)
    ax.legend(fontsize=7)
  return figure


def _curve_panels(names: Sequence[str], title: str) -> tuple[Figure, list[Any]]:
  """A figure of titled panels against generator step, two per row."""
  columns = min(2, len(names))
  rows = math.ceil(len(names) / columns)
  figure = Figure(figsize=(4.2 * columns, 2.2 * rows), dpi=_DPI,
                  layout="constrained")
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax, name in zip(axes, names):
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("generator step")
    ax.grid(alpha=0.3)
  for ax in axes[len(names):]:
    ax.set_visible(False)
  if title:
    figure.suptitle(title)
  return figure, list(axes[:len(names)])


@dataclasses.dataclass(frozen=True)
class Landscape:
  """A critic's value on a square grid of the plane.

  values[i, j] is the critic at the point (xs[j], ys[i]) (matplotlib's
  contour convention). xs, ys: float32 [R]; values: float32 [R, R].
  """
  xs: np.ndarray
  ys: np.ndarray
  values: np.ndarray


def landscape_half_width(modes: np.ndarray) -> float:
  """Half-width of the plotted square: LANDSCAPE_MARGIN x max |coordinate|."""
  return LANDSCAPE_MARGIN * float(np.max(np.abs(modes)))


def critic_landscape(critic: sampling.Critic, half_width: float,
                     resolution: int = LANDSCAPE_RESOLUTION) -> Landscape:
  """A 2-D critic on a resolution^2 grid of [-half_width, half_width]^2."""
  if critic.data_shape != (2,):
    raise ValueError(f"A landscape needs a critic of 2-D points; this one "
                     f"takes examples of shape {critic.data_shape}.")
  axis = np.linspace(-half_width, half_width, resolution, dtype=np.float32)
  x, y = np.meshgrid(axis, axis)  # x[i, j] = axis[j], y[i, j] = axis[i]
  points = np.stack([x.ravel(), y.ravel()], axis=-1)
  values = sampling.critic_values(critic, points).reshape(resolution,
                                                          resolution)
  return Landscape(xs=axis, ys=axis.copy(), values=values)


def plot_landscapes(landscapes: Sequence[Landscape],
                    fakes: Sequence[np.ndarray], reals: np.ndarray,
                    modes: np.ndarray, titles: Sequence[str]) -> Figure:
  """Critic value bands with real and generated points, one panel each.

  As Figure 1 of Gulrajani et al. 2017: real points orange, generated green.

  Args:
    landscapes: one per panel.
    fakes: float [N, 2] generated points, one array per panel.
    reals: float [M, 2] real points (every panel).
    modes: float [K, 2] mixture centres, drawn as black crosses.
    titles: one per panel.
  """
  num = len(landscapes)
  if not num or not len(fakes) == len(titles) == num:
    raise ValueError(f"plot_landscapes needs one fakes array and title per "
                     f"landscape, got {num}, {len(fakes)}, {len(titles)}.")
  columns = min(3, num)
  rows = math.ceil(num / columns)
  figure = Figure(figsize=(3.8 * columns, 3.3 * rows), dpi=_DPI,
                  layout="constrained")
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax, land, fake, title in zip(axes, landscapes, fakes, titles):
    # Each panel has its own colour scale: a critic is defined up to an
    # additive constant, which drifts during training.
    filled = ax.contourf(land.xs, land.ys, land.values, levels=20,
                         cmap="Blues")
    figure.colorbar(filled, ax=ax, shrink=0.85, label="critic value")
    ax.scatter(modes[:, 0], modes[:, 1], s=30, c="k", marker="x", lw=0.8,
               label="modes")
    ax.scatter(reals[:, 0], reals[:, 1], s=4, c="tab:orange", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:green", label="generated")
    ax.set_xlim(land.xs[0], land.xs[-1])
    ax.set_ylim(land.ys[0], land.ys[-1])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)
  axes[0].legend(loc="upper right", fontsize=7, markerscale=2)
  for ax in axes[num:]:
    ax.set_visible(False)
  return figure
