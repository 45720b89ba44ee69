"""A labelled two-class folder of 64x64 faces (cat/, anime/) from the shipped zips.

    python experiments/two_class_faces.py OUT_DIR [--per_class=N]

Only the AFHQ cats exist in this environment (animal_faces_64.zip), so the
class-conditional 64x64 config is checked on a folder in the AFHQ layout
built from it and from the anime faces: OUT_DIR/cat/ (the first N cats) and
OUT_DIR/anime/ (the first N anime faces), N = --per_class (default: all
5,153 cats, and as many anime faces). The files are copied byte for byte.
Train on it with

    python -m wgan_jax.main --config=configs/animal_faces_cwgangp.py --workdir=DIR \\
        --config.data.path=OUT_DIR --config.model.num_classes=2
"""

import argparse
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402  pylint: disable=g-import-not-at-top
from wgan_jax import data as data_lib  # noqa: E402  pylint: disable=g-import-not-at-top

SOURCES = {"cat": "animal_faces_64.zip", "anime": "anime_faces_64.zip"}


def build(out_dir: str, per_class: int | None = None) -> dict[str, int]:
  """Writes OUT_DIR/<class>/*; returns the count per class."""
  names = {}
  for label, zip_name in SOURCES.items():
    with zipfile.ZipFile(default.data_file(zip_name)) as z:
      names[label] = sorted(n for n in z.namelist()
                            if os.path.splitext(n)[1].lower()
                            in data_lib.IMAGE_EXTENSIONS)
  n = per_class or min(len(v) for v in names.values())
  counts = {}
  for label, zip_name in SOURCES.items():
    folder = os.path.join(out_dir, label)
    os.makedirs(folder, exist_ok=True)
    with zipfile.ZipFile(default.data_file(zip_name)) as z:
      for name in names[label][:n]:
        with open(os.path.join(folder, os.path.basename(name)), "wb") as f:
          f.write(z.read(name))
    counts[label] = min(n, len(names[label]))
  return counts


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("out_dir")
  parser.add_argument("--per_class", type=int, default=None)
  args = parser.parse_args()
  print(build(args.out_dir, args.per_class))


if __name__ == "__main__":
  main()
