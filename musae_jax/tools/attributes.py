r"""Attribute vectors: directions in latent space that change one musical property of a track.

  python -m musae_jax.tools.attributes --workdir=RUN [--split=train | --midi_dir=DIR] \
      [--max_windows=20000]

For each track and descriptor (note density, mean pitch, mean note length, mean pitch step,
silent rate; see music_metrics.DESCRIPTORS) the vector is the mean code of the windows in the
top quantile of that descriptor minus the mean code of the windows in the bottom quantile
(MusicVAE's attribute vectors). Names are "<track>_<descriptor>", e.g. "bass_note_density".

Written into the workdir: attributes.npz (names, vectors [A, N_z]) and attributes.json (for each
vector: the windows and descriptor means behind it, and its measured effect: on a sample of
windows, the descriptor of decode(z + v) minus that of decode(z), and the same for -v). Then
`python -m musae_jax.tools.generate --mode=attribute --attribute=NAME --amount=X` adds X * v.
"""

import json
import os

from absl import flags
from absl import logging
import numpy as np

from data_pipeline.tokens import TRACKS
from musae_common import cli
from musae_common.errors import UserError
from musae_jax.tools import input_windows
from musae_jax.tools import music_metrics
from musae_jax.tools import reports
from musae_jax.tools import runs

DESCRIPTORS = ("note_density", "mean_pitch", "mean_note_length", "mean_pitch_step", "silent_rate")
VECTORS_FILE = "attributes.npz"
SUMMARY_FILE = "attributes.json"
MIN_WINDOWS = 8  # Fewest windows on each side for a vector to be kept.


def compute_vectors(codes: np.ndarray, descriptors: dict[str, np.ndarray],
                    quantile: float = 0.25) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
  """(name -> vector [N_z], name -> how it was made), from codes [N, N_z] and the windows'
  descriptors (name -> [N, 4]). The high and low sets are the top and bottom `quantile` of the
  windows ranked by the descriptor (at least MIN_WINDOWS each); windows where it is undefined
  are left out, and a descriptor defined on too few windows or without spread gets no vector."""
  if not 0 < quantile <= 0.5:
    raise UserError(f"--quantile={quantile} must be in (0, 0.5].")
  vectors, info = {}, {}
  for track_index, track in enumerate(TRACKS):
    for descriptor in DESCRIPTORS:
      name = f"{track}_{descriptor}"
      values = descriptors[descriptor][:, track_index]
      defined = np.flatnonzero(~np.isnan(values))
      if defined.size < 2 * MIN_WINDOWS:
        logging.warning("%s: only %d windows define it; no vector.", name, defined.size)
        continue
      # By rank, not by value: a descriptor with many ties (a drum hit lasts one step) still
      # splits into a bottom and a top share.
      order = defined[np.argsort(values[defined], kind="stable")]
      count = max(MIN_WINDOWS, int(np.ceil(quantile * defined.size)))
      low, high = order[:count], order[-count:]
      if values[high].mean() <= values[low].mean():
        logging.warning("%s: the same in every window; no vector.", name)
        continue
      vectors[name] = (codes[high].mean(axis=0) - codes[low].mean(axis=0)).astype(np.float32)
      info[name] = {"num_high": int(high.size), "num_low": int(low.size),
                    "high_mean": float(values[high].mean()),
                    "low_mean": float(values[low].mean()),
                    "norm": float(np.linalg.norm(vectors[name]))}
  return vectors, info


def measure_effects(run: runs.Run, codes: np.ndarray, vectors: dict[str, np.ndarray],
                    amount: float = 1.0) -> dict[str, dict[str, float]]:
  """For each vector: the mean change of its descriptor between decode(z +- amount * v) and
  decode(z) over the given codes (NaN-safe means)."""
  base = music_metrics.window_descriptors(run.decode(codes))
  effects = {}
  for name, vector in vectors.items():
    track, descriptor = _split_name(name)
    column = TRACKS.index(track)
    effect = {}
    for sign, label in ((1.0, "plus"), (-1.0, "minus")):
      moved = music_metrics.window_descriptors(run.decode(codes + sign * amount * vector))
      change = moved[descriptor][:, column] - base[descriptor][:, column]
      effect[label] = float(np.nanmean(change)) if (~np.isnan(change)).any() else float("nan")
    effects[name] = effect
  return effects


def _split_name(name: str) -> tuple[str, str]:
  track, _, descriptor = name.partition("_")
  return track, descriptor


def save(workdir: str, vectors: dict[str, np.ndarray], summary: dict) -> tuple[str, str]:
  names = sorted(vectors)
  vectors_path = os.path.join(workdir, VECTORS_FILE)
  np.savez(vectors_path, names=np.array(names), vectors=np.stack([vectors[n] for n in names]))
  summary_path = os.path.join(workdir, SUMMARY_FILE)
  with open(summary_path, "w", encoding="utf-8") as f:
    json.dump(reports.json_safe(summary), f, indent=1, sort_keys=True)
  return vectors_path, summary_path


def load_vector(workdir: str, name: str, latent_size: int) -> np.ndarray:
  """One saved vector [N_z]; clear errors when none were computed or the name is unknown."""
  path = os.path.join(workdir, VECTORS_FILE)
  if not os.path.exists(path):
    raise UserError(f"{path}: no attribute vectors yet; compute them with "
                    f"python -m musae_jax.tools.attributes --workdir={workdir}")
  with np.load(path) as saved:
    names = [str(n) for n in saved["names"]]
    if name not in names:
      raise UserError(f"attribute {name!r} is not in {path}; available: {', '.join(names)}.")
    vector = saved["vectors"][names.index(name)]
  if vector.shape != (latent_size,):
    raise UserError(f"{path} holds {vector.shape[0]}-dimensional vectors but the run's codes "
                    f"have {latent_size} dimensions; recompute them.")
  return vector


def compute_and_save(run: runs.Run, windows: input_windows.WindowSet, quantile: float = 0.25,
                     check_windows: int = 64, seed: int = 0) -> dict:
  """Encodes the windows, computes, measures and saves the vectors; returns the summary."""
  codes = run.encode(windows.tokens)
  vectors, info = compute_vectors(codes, music_metrics.window_descriptors(windows.tokens),
                                  quantile)
  if not vectors:
    raise UserError(f"no attribute vector could be computed from {len(windows)} windows of "
                    f"{windows.description}; use more data.")
  if check_windows:
    rows = np.random.default_rng(seed).permutation(len(codes))[:check_windows]
    for name, effect in measure_effects(run, codes[rows], vectors).items():
      info[name]["effect_of_plus_vector"] = effect["plus"]
      info[name]["effect_of_minus_vector"] = effect["minus"]
  summary = {"step": run.step, "source": windows.description, "num_windows": len(windows),
             "quantile": quantile, "vectors": info}
  save(run.workdir, vectors, summary)
  return summary


def define_flags() -> None:
  """The command-line flags (defined only when run as a program, so importing defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory; the vectors are saved in it.")
  flags.DEFINE_string("split", "train", "Dataset split to compute the vectors from (ignored "
                      "with --midi_dir).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir of the dataset (default: the run's "
                      "config.data.data_dir).")
  flags.DEFINE_string("midi_dir", None, "Compute from the windows of this MIDI folder instead "
                      "of a dataset split.")
  flags.DEFINE_integer("max_windows", 20_000, "Random subset of windows to use (0 = all).")
  flags.DEFINE_float("quantile", 0.25, "Share of windows on each side (high / low).")
  flags.DEFINE_integer("check_windows", 64, "Windows used to measure each vector's effect "
                       "(0 = skip).")
  flags.DEFINE_integer("seed", 0, "Seeds the window subsets.")


def main(argv):
  f = flags.FLAGS

  def body():
    run = runs.load_run(f.workdir)
    windows = input_windows.run_windows(run, split=f.split, data_dir=f.data_dir,
                                        midi_dir=f.midi_dir, max_windows=f.max_windows,
                                        seed=f.seed)
    return run, compute_and_save(run, windows, f.quantile, f.check_windows, f.seed)

  run, summary = cli.run_tool(argv, body)
  print(f"{len(summary['vectors'])} attribute vectors from {summary['num_windows']} windows of "
        f"{summary['source']} -> {os.path.join(run.workdir, VECTORS_FILE)}")
  for name, info in sorted(summary["vectors"].items()):
    effect = info.get("effect_of_plus_vector")
    shown = ""
    if effect is not None:  # NaN: the decoded windows have no note on that track.
      shown = f", decode(z+v) changes it by {effect:+.3g}" if np.isfinite(effect) else (
          ", its effect is undefined (no decoded notes)")
    print(f"  {name}: high {info['high_mean']:.3g} vs low {info['low_mean']:.3g}{shown}")


def console_main() -> None:
  """The musae-attributes console script."""
  cli.run_console(main, __name__, define_flags, ["workdir"])


if __name__ == "__main__":
  console_main()
