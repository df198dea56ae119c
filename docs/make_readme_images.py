"""Redraws the README's pictures from a trained run (by default the demo run).

  python -m musae_jax.main --config=configs/demo.py
  python docs/make_readme_images.py --workdir=runs/demo

Runs each generation mode the way the README shows it and puts the input window, its plain
reconstruction and the result side by side with the tools' own grid drawing; the evaluation
pictures are the evaluate tool's own PNGs.
"""

import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from musae_jax.tools import attributes
from musae_jax.tools import evaluate
from musae_jax.tools import generate
from musae_jax.tools import input_windows
from musae_jax.tools import plots
from musae_jax.tools import runs

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Trained run.")
_IMAGES = flags.DEFINE_string("images", "docs/images", "Where the PNGs go.")
SONG = "demo_data/midi/miditok/Mr._Blue_Sky.mid"
SONG2 = "demo_data/midi/miditok/What_a_Fool_Believes.mid"


def _grid(outputs, titles, path):
  plots.pianoroll_grid([o.tokens for o in outputs], path, column_titles=titles)


def main(argv):
  del argv
  images, workdir = _IMAGES.value, _WORKDIR.value
  os.makedirs(images, exist_ok=True)
  out = tempfile.mkdtemp()
  run = runs.load_run(workdir)
  genre = "pop" if "pop" in run.genres else run.genres[0]

  outputs = generate.reconstruct(run, SONG, out, start_bar=12)
  _grid(outputs, [o.name for o in outputs], f"{images}/generate_reconstruct.png")
  outputs = generate.sample(run, out, 4, "rock" if "rock" in run.genres else None, 0.5)
  _grid(outputs, [o.name for o in outputs], f"{images}/generate_sample.png")
  outputs = generate.interpolate(run, SONG, SONG2, out, 7)
  grid = next(o for o in outputs if o.tokens.ndim == 3)  # The interpolation's own grid picture.
  shutil.copy(grid.paths[-1], f"{images}/generate_interpolate.png")
  outputs = generate.transfer(run, SONG, out, genre, start_bar=12)
  _grid(outputs, [o.name for o in outputs], f"{images}/generate_transfer.png")
  windows = input_windows.midi_dir_windows("demo_data/midi", run.config.data.bars, run.genres,
                                           genres_file="demo_data/genres.json")
  attributes.compute_and_save(run, windows)
  outputs = generate.attribute(run, SONG, out, "drums_note_density", 2.0, start_bar=12)
  _grid(outputs, [o.name for o in outputs], f"{images}/generate_attribute.png")

  evaluate.evaluate(run, windows, os.path.join(out, "eval"))
  for name, source in (("interpolation", "interpolation_hamming"),
                       ("components", "component_metrics"), ("genres", "genre_pca")):
    source = os.path.join(out, "eval", f"{source}.png")
    if os.path.exists(source):
      shutil.copy(source, f"{images}/evaluate_{name}.png")
  with open(os.path.join(out, "eval", "report.md"), encoding="utf-8") as f:
    report = f.read()
  for old, new in (("interpolation_hamming", "interpolation"), ("component_metrics", "components"),
                   ("genre_pca", "genres")):
    report = report.replace(f"({old}.png)", f"(evaluate_{new}.png)")
  with open(f"{images}/demo_report.md", "w", encoding="utf-8") as f:
    f.write(report)
  print(f"Pictures written to {images}; the evaluation report is {images}/demo_report.md")


if __name__ == "__main__":
  app.run(main)
