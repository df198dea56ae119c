r"""The paper's results for a trained run, in one command: metrics.json, report.md and figures.

  python -m musae_jax.tools.evaluate --workdir=RUN --split=validation --out=DIR
  python -m musae_jax.tools.evaluate --workdir=RUN --midi_dir=DIR [--genres=FILE] --out=DIR

Every window of the data is encoded (code = posterior mean) and decoded (argmax), then:
  Table 1   per-track accuracy as MusAE defines it (every step, hold/silent included), its mean
            over the 4 tracks and over drums/bass/guitar, plus note accuracy and onset F1, which
            hold/silent steps cannot inflate;
  Figure 4  normalised Hamming distance to x1 along latent interpolations x1 -> x2 (up to 256
            pairs of windows from different songs, 11 values of alpha) next to the data-space
            baseline that takes each entry of x2 with probability alpha;
  Figure 3  (flower prior) windows decoded from 256 prior samples of each component, their
            low-level descriptors per track as relative deviation from the global mean;
  Figure 5  PCA of the codes of two genres (windows tagged with one but not the other), and a
            logistic-regression probe's accuracy at telling the two apart from z on held-out
            songs, beside the chance rate (always guessing the pair's larger genre);
  Prior fit what the adversarial regulariser buys: how far the codes lie from the prior (MMD)
            and whether windows decoded from prior samples have the data's note density,
            silence and pitch-class counts.
"""

import dataclasses
import itertools
import json
import os

from absl import flags
import numpy as np

from data_pipeline.tokens import TRACKS
from musae_common import cli
from musae_common.errors import UserError
from musae_jax.tools import input_windows
from musae_jax.tools import music_metrics
from musae_jax.tools import plots
from musae_jax.tools import reports
from musae_jax.tools import runs

NUM_ALPHAS = 11
MAX_PAIR_PANELS = 6  # Genre pairs shown in Figure 5 (and probed).
MIN_SONGS_PER_GENRE = 2  # A genre needs windows from this many songs to be probed (held-out songs).


def interpolation_curves(run: runs.Run, windows: input_windows.WindowSet, codes: np.ndarray,
                         num_pairs: int = 256, seed: int = 0) -> dict[str, list[float]]:
  """Figure 4: mean normalised Hamming distance to x1 of the decoded interpolations and of the
  Bernoulli data-space mix, at NUM_ALPHAS values of alpha in [0, 1]."""
  rng = np.random.default_rng(seed)
  count = len(windows)
  if count < 2:
    raise UserError(f"interpolation needs at least 2 windows, {windows.description} has {count}.")
  first = rng.integers(0, count, num_pairs * 8)
  second = rng.integers(0, count, num_pairs * 8)
  usable = first != second
  if len(np.unique(windows.songs)) > 1:  # Pairs across songs, as the paper's x1 and x2.
    usable &= windows.songs[first] != windows.songs[second]
  first, second = first[usable][:num_pairs], second[usable][:num_pairs]
  alphas = np.linspace(0.0, 1.0, NUM_ALPHAS)
  mixed_codes = ((1 - alphas)[None, :, None] * codes[first][:, None]
                 + alphas[None, :, None] * codes[second][:, None])
  decoded = run.decode(mixed_codes.reshape(-1, codes.shape[1]))
  decoded = decoded.reshape((len(first), NUM_ALPHAS) + decoded.shape[1:])
  start, end = windows.tokens[first], windows.tokens[second]
  latent = music_metrics.hamming_distance(decoded, start[:, None]).mean(axis=0)
  data = [music_metrics.hamming_distance(
      music_metrics.bernoulli_interpolation(rng, start, end, a), start).mean() for a in alphas]
  return {"alpha": alphas.tolist(), "latent_hamming": latent.tolist(),
          "data_hamming": [float(d) for d in data], "num_pairs": int(len(first))}


def component_deviations(run: runs.Run, samples_per_component: int = 256,
                         seed: int = 0) -> dict:
  """Figure 3: descriptors of windows decoded from each flower component's samples, as
  (component mean - global mean) / |global mean|, rows "<track> <descriptor>"."""
  per_component = []
  for component in range(run.num_components):
    codes = runs.prior_codes(run, seed + component, samples_per_component, component)
    descriptors = music_metrics.window_descriptors(run.decode(codes))
    per_component.append(descriptors)
  rows, matrix, global_means = [], [], []
  for track_index, track in enumerate(TRACKS):
    for name in music_metrics.DESCRIPTORS:
      local = np.array([_nanmean(c[name][:, track_index]) for c in per_component])
      overall = _nanmean(np.concatenate([c[name][:, track_index] for c in per_component]))
      with np.errstate(divide="ignore", invalid="ignore"):
        deviation = (local - overall) / abs(overall) if overall else np.full_like(local, np.nan)
      rows.append(f"{track} {name}")
      matrix.append(deviation.tolist())
      global_means.append(overall)
  return {"components": [runs.component_name(run, k) for k in range(run.num_components)],
          "rows": rows, "relative_deviation": matrix, "global_mean": global_means,
          "samples_per_component": samples_per_component}


def _nanmean(values: np.ndarray) -> float:
  values = np.asarray(values, np.float64)
  finite = values[~np.isnan(values)]
  return float(finite.mean()) if finite.size else float("nan")


SAMPLE_DESCRIPTORS = ("note_density", "silent_rate", "pitch_classes")  # Compared in "Prior fit".


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[len(a), len(b)] squared Euclidean distances between the rows, in float64."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.maximum(np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T, 0.0)


def mmd_squared(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
  """Unbiased squared maximum mean discrepancy between two samples, Gaussian kernel: about 0
  when both come from one distribution, larger the further apart they are."""

  def kernel(a, b):
    return np.exp(-_squared_distances(a, b) / (2.0 * bandwidth ** 2))

  kxx, kyy = kernel(x, x), kernel(y, y)
  n, m = len(x), len(y)
  within_x = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
  within_y = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
  return float(within_x + within_y - 2.0 * kernel(x, y).mean())


def prior_fit(run: runs.Run, windows: input_windows.WindowSet, codes: np.ndarray,
              num_samples: int = 1024, seed: int = 0) -> dict:
  """The regulariser's side of the trade with reconstruction (a small beta reconstructs better
  and matches the prior less): MMD^2 between the codes (posterior means, at most num_samples)
  and as many prior samples, beside MMD^2 between two independent prior sample sets (a perfect
  fit's value; its spread is the estimate's noise); the kernel bandwidth is the median distance
  between prior samples, so runs with the same prior and N_z are comparable. Then the mean
  descriptors of num_samples windows decoded from the prior beside the data's. (The flower
  prior's samples take its components uniformly, the data its genres as they come.)"""
  rng = np.random.default_rng(seed)
  count = min(num_samples, len(codes))
  if count < 2:
    raise UserError(f"the prior fit needs at least 2 windows, {windows.description} has "
                    f"{len(codes)}.")
  data_codes = codes[rng.choice(len(codes), count, replace=False)]
  prior_a = runs.prior_codes(run, seed + 1, count)
  prior_b = runs.prior_codes(run, seed + 2, count)
  bandwidth = float(np.median(np.sqrt(_squared_distances(prior_a, prior_b))))
  sample_descriptors = music_metrics.window_descriptors(run.decode(prior_a))
  data_descriptors = music_metrics.window_descriptors(windows.tokens)
  descriptors = {name: {"data": [_nanmean(data_descriptors[name][:, t]) for t in range(4)],
                        "samples": [_nanmean(sample_descriptors[name][:, t]) for t in range(4)]}
                 for name in SAMPLE_DESCRIPTORS}
  return {"mmd_squared": mmd_squared(data_codes, prior_b, bandwidth),
          "mmd_squared_prior_vs_prior": mmd_squared(prior_a, prior_b, bandwidth),
          "bandwidth": bandwidth, "num_samples": count,
          "code_norm": float(np.linalg.norm(codes, axis=1).mean()),
          "prior_norm": float(np.linalg.norm(prior_b, axis=1).mean()),
          "descriptors": descriptors}


@dataclasses.dataclass
class GenrePair:
  names: tuple[str, str]
  rows: np.ndarray  # window indices
  is_second: np.ndarray  # bool per row


def genre_pairs(windows: input_windows.WindowSet, max_pairs: int = MAX_PAIR_PANELS,
                per_genre: int = 128, seed: int = 0) -> list[GenrePair]:
  """Pairs of frequent genres, each side the windows tagged with its genre and not the other
  (at most per_genre windows each, as the paper's 128 + 128), from >= MIN_SONGS_PER_GENRE songs."""
  rng = np.random.default_rng(seed)
  tagged = windows.genres > 0
  songs_per_genre = [len(np.unique(windows.songs[tagged[:, g]])) for g in range(tagged.shape[1])]
  ranked = [g for g in np.argsort(songs_per_genre, kind="stable")[::-1]
            if songs_per_genre[g] >= MIN_SONGS_PER_GENRE]
  pairs = []
  for a, b in itertools.combinations(ranked, 2):
    only_a = np.flatnonzero(tagged[:, a] & ~tagged[:, b])
    only_b = np.flatnonzero(tagged[:, b] & ~tagged[:, a])
    if min(len(np.unique(windows.songs[only_a])),
           len(np.unique(windows.songs[only_b]))) < MIN_SONGS_PER_GENRE:
      continue
    only_a = rng.permutation(only_a)[:per_genre]
    only_b = rng.permutation(only_b)[:per_genre]
    is_second = np.concatenate([np.zeros(len(only_a), bool), np.ones(len(only_b), bool)])
    pairs.append(GenrePair((windows.vocabulary[a], windows.vocabulary[b]),
                           np.concatenate([only_a, only_b]), is_second))
    if len(pairs) == max_pairs:
      break
  return pairs


def probe_pair(codes: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
  """(held-out accuracy of a logistic-regression probe, chance accuracy).

  Folds hold out whole songs (neighbouring windows of a song would leak otherwise). Holding out
  a song shifts the class balance of the training folds against its genre, so the probe weighs
  the classes equally, and chance is the share of the larger class (always guessing it).
  """
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import GroupKFold  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  folds = GroupKFold(n_splits=min(5, len(np.unique(groups))))
  correct = 0
  for train, test in folds.split(codes, labels, groups):
    if len(np.unique(labels[train])) < 2:  # Nothing to learn from: guess the one class seen.
      correct += int((labels[test] == labels[train][0]).sum())
      continue
    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(max_iter=2000, class_weight="balanced"))
    probe.fit(codes[train], labels[train])
    correct += int((probe.predict(codes[test]) == labels[test]).sum())
  chance = np.bincount(labels, minlength=2).max() / len(labels)
  return correct / len(labels), float(chance)


def genre_analysis(windows: input_windows.WindowSet, codes: np.ndarray, seed: int = 0
                   ) -> tuple[dict, list[tuple[str, str, np.ndarray, np.ndarray]]]:
  """Figure 5: (the probe results, the PCA panels to draw)."""
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  results, panels = [], []
  for pair in genre_pairs(windows, seed=seed):
    pair_codes = codes[pair.rows]
    labels = pair.is_second.astype(np.int64)
    accuracy, chance = probe_pair(pair_codes, labels, windows.songs[pair.rows])
    results.append({"genres": list(pair.names), "accuracy": accuracy, "chance": chance,
                    "windows": [int((~pair.is_second).sum()), int(pair.is_second.sum())],
                    "songs": int(len(np.unique(windows.songs[pair.rows])))})
    points = PCA(n_components=2).fit_transform(pair_codes)
    panels.append((pair.names[0], pair.names[1], points, pair.is_second))
  if not results:
    return {"accuracy": None, "chance": None, "pairs": [],
            "note": f"no two genres each have windows from >= {MIN_SONGS_PER_GENRE} songs "
                    "without the other's tag"}, panels
  return {"accuracy": float(np.mean([r["accuracy"] for r in results])),
          "chance": float(np.mean([r["chance"] for r in results])), "pairs": results}, panels


def evaluate(run: runs.Run, windows: input_windows.WindowSet, out_dir: str,
             num_pairs: int = 256, samples_per_component: int = 256, seed: int = 0) -> dict:
  """Computes every result, writes metrics.json, report.md and the PNGs; returns the metrics."""
  os.makedirs(out_dir, exist_ok=True)
  codes = run.encode(windows.tokens)
  counts = music_metrics.ReconstructionCounts()
  counts.update(run.decode(codes), windows.tokens)
  metrics = counts.scores()
  metrics.update(num_windows=len(windows), num_songs=int(len(np.unique(windows.songs))),
                 step=run.step, data=windows.description, rejected_songs=windows.rejected)
  figures = {}

  metrics["interpolation"] = interpolation_curves(run, windows, codes, num_pairs, seed)
  curves = metrics["interpolation"]
  figures["interpolation"] = plots.curves(
      np.array(curves["alpha"]),
      {"latent interpolation": np.array(curves["latent_hamming"]),
       "data (Bernoulli) interpolation": np.array(curves["data_hamming"])},
      os.path.join(out_dir, "interpolation_hamming.png"), "α",
      "normalised Hamming distance to x₁", title=f"{curves['num_pairs']} interpolations")

  if run.prior == "flower":
    metrics["components"] = component_deviations(run, samples_per_component, seed)
    components = metrics["components"]
    figures["components"] = plots.heatmap(
        np.array(components["relative_deviation"]), components["rows"], components["components"],
        os.path.join(out_dir, "component_metrics.png"),
        title="Descriptors of decoded prior samples per component",
        colorbar_label="relative deviation from the global mean")

  metrics["genre_probe"], panels = genre_analysis(windows, codes, seed)
  if panels:
    figures["genres"] = plots.scatter_pairs(panels, os.path.join(out_dir, "genre_pca.png"),
                                            title="PCA of the codes of genre pairs")
  metrics["prior_fit"] = prior_fit(run, windows, codes, seed=seed)
  metrics["figures"] = {k: os.path.basename(v) for k, v in figures.items()}
  metrics = reports.json_safe(metrics)
  with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=1)
  with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
    f.write(report_markdown(run, metrics))
  return metrics


def _number(value, digits: int = 3) -> str:
  return "n/a" if value is None else f"{value:.{digits}f}"


def report_markdown(run: runs.Run, metrics: dict) -> str:
  """report.md: the four results as tables and figures."""
  lines = [f"# Evaluation of `{run.workdir}` at step {metrics['step']}", "",
           f"{metrics['num_windows']} windows from {metrics['num_songs']} songs: "
           f"{metrics['data']}. Prior: {run.prior}; latent size {run.latent_size}. "
           "Codes are posterior means; decoding takes the most likely token.", ""]
  if metrics.get("rejected_songs"):
    lines += [f"Songs rejected by the filters: {metrics['rejected_songs']}.", ""]
  lines += ["## Table 1: reconstruction", "",
            "Accuracy is MusAE's (argmax over the 130 classes at every step, hold and silent "
            "included). Note accuracy counts only steps whose target starts a note; onset F1 "
            "also penalises predicted onsets the target does not have.", "",
            "| track | accuracy | note accuracy | onset F1 |", "|---|---|---|---|"]
  for key in TRACKS + ("mean",):
    lines.append(f"| {key} | {_number(metrics['accuracy'][key])} | "
                 f"{_number(metrics['note_accuracy'][key])} | "
                 f"{_number(metrics['onset_f1'][key])} |")
  lines += [f"| mean drums/bass/guitar | {_number(metrics['accuracy']['mean_dbg'])} | | |", ""]

  curves = metrics["interpolation"]
  lines += ["## Figure 4: interpolation", "",
            "Normalised Hamming distance (share of differing step x track tokens) between x₁ "
            f"and the window decoded at (1-α)·z₁ + α·z₂, mean over {curves['num_pairs']} "
            "pairs of windows from different songs, beside the data-space baseline that takes "
            "each token of x₂ with probability α.", "",
            f"![interpolation]({metrics['figures']['interpolation']})", "",
            "| α | " + " | ".join(f"{a:.1f}" for a in curves["alpha"]) + " |",
            "|---|" + "---|" * len(curves["alpha"]),
            "| latent | " + " | ".join(_number(v) for v in curves["latent_hamming"]) + " |",
            "| data | " + " | ".join(_number(v) for v in curves["data_hamming"]) + " |", ""]

  lines += ["## Figure 3: low-level metrics per prior component", ""]
  if "components" in metrics:
    components = metrics["components"]
    lines += [f"{components['samples_per_component']} samples of each of the "
              f"{len(components['components'])} flower components, decoded; each cell is "
              "(component mean - global mean) / |global mean| of a descriptor of one track.", "",
              f"![components]({metrics['figures']['components']})", "",
              "Descriptors: " + "; ".join(f"{k}: {v}" for k, v in
                                          music_metrics.DESCRIPTORS.items()) + ".", ""]
  else:
    lines += ["Not applicable: this run's prior is Gaussian (one component).", ""]

  probe = metrics["genre_probe"]
  lines += ["## Figure 5: genres in the latent space", ""]
  if probe["pairs"]:
    lines += [f"![genres]({metrics['figures']['genres']})", "",
              "A logistic-regression probe on z tells the two genres apart on held-out songs "
              "(grouped cross-validation, classes weighed equally); chance always guesses the "
              "pair's larger genre.", "", "| genres | windows | songs | probe accuracy | chance |",
              "|---|---|---|---|---|"]
    for pair in probe["pairs"]:
      lines.append(f"| {pair['genres'][0]} vs {pair['genres'][1]} | "
                   f"{pair['windows'][0]} + {pair['windows'][1]} | {pair['songs']} | "
                   f"{_number(pair['accuracy'])} | {_number(pair['chance'])} |")
    lines += [f"| **mean** | | | **{_number(probe['accuracy'])}** | "
              f"**{_number(probe['chance'])}** |", ""]
  else:
    lines += [f"Not computed: {probe.get('note', 'no genre labels')}.", ""]

  fit = metrics["prior_fit"]
  lines += ["## Prior fit", "",
            f"MMD² (Gaussian kernel, bandwidth {fit['bandwidth']:.2f}, the median distance "
            f"between prior samples) between {fit['num_samples']} codes and as many prior "
            f"samples: **{fit['mmd_squared']:.4f}**; between two prior sample sets (a perfect "
            f"fit): {fit['mmd_squared_prior_vs_prior']:.4f}. Mean code norm "
            f"{fit['code_norm']:.2f}, prior sample norm {fit['prior_norm']:.2f}.", "",
            f"Windows decoded from {fit['num_samples']} prior samples beside the data windows "
            "(means per window; descriptors in Figure 3's list):", "",
            "| descriptor | " + " | ".join(f"{t} data / samples" for t in TRACKS) + " |",
            "|---|" + "---|" * len(TRACKS)]
  for name, values in fit["descriptors"].items():
    lines.append(f"| {name} | " + " | ".join(
        f"{_number(d, 2)} / {_number(s, 2)}" for d, s in zip(values["data"], values["samples"]))
                 + " |")
  lines.append("")
  return "\n".join(lines)


def check_data_flags(split: str | None, midi_dir: str | None, genres: str | None) -> None:
  """The data is either a dataset split or a MIDI folder (with optional labels)."""
  if bool(split) == bool(midi_dir):
    raise UserError("give exactly one of --split=NAME or --midi_dir=DIR.")
  if genres and not midi_dir:
    raise UserError("--genres goes with --midi_dir (a split carries its own genres).")


def check_count_flags(**counts: int) -> None:
  """max_windows may be 0 (all windows); the other counts must be positive. Checked before the
  run is loaded, so a typo does not cost a whole split's encoding first."""
  for name, value in counts.items():
    smallest = 0 if name == "max_windows" else 1
    if value < smallest:
      raise UserError(f"--{name}={value}: must be at least {smallest}.")


def define_flags() -> None:
  """The command-line flags (defined only when run as a program, so importing defines none)."""
  flags.DEFINE_string("workdir", None, "Training run directory.")
  flags.DEFINE_string("split", None, "Dataset split to evaluate (e.g. validation).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir of the dataset (default: the run's "
                      "config.data.data_dir).")
  flags.DEFINE_string("midi_dir", None, "Evaluate every window of the MIDI files in this folder "
                      "instead of a split.")
  flags.DEFINE_string("genres", None, "With --midi_dir: genre labels (JSON {relative path: "
                      "[tags]}) for Figure 5.")
  flags.DEFINE_string("out", None, "Output folder for metrics.json, report.md and PNGs.")
  flags.DEFINE_integer("max_windows", 0, "Random subset of windows (0 = all).")
  flags.DEFINE_integer("num_pairs", 256, "Interpolation pairs for Figure 4.")
  flags.DEFINE_integer("samples_per_component", 256, "Prior samples per flower component for "
                       "Figure 3.")
  flags.DEFINE_integer("seed", 0, "Seeds the pairs, samples and subsets.")


def main(argv):
  f = flags.FLAGS

  def body():
    check_data_flags(f.split, f.midi_dir, f.genres)
    check_count_flags(max_windows=f.max_windows, num_pairs=f.num_pairs,
                      samples_per_component=f.samples_per_component)
    cli.output_folder(f.out)
    run = runs.load_run(f.workdir)
    windows = input_windows.run_windows(run, split=f.split, data_dir=f.data_dir,
                                        midi_dir=f.midi_dir, genres_file=f.genres,
                                        max_windows=f.max_windows, seed=f.seed)
    return evaluate(run, windows, f.out, f.num_pairs, f.samples_per_component, f.seed)

  metrics = cli.run_tool(argv, body)
  print(f"{metrics['num_windows']} windows, {metrics['num_songs']} songs: accuracy mean "
        f"{metrics['accuracy']['mean']:.3f}, note accuracy mean "
        f"{_number(metrics['note_accuracy']['mean'])}; report in "
        f"{os.path.join(f.out, 'report.md')}")


def console_main() -> None:
  """The musae-evaluate console script."""
  cli.run_console(main, __name__, define_flags, ["workdir", "out"])


if __name__ == "__main__":
  console_main()
