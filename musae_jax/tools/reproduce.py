r"""The reproduction suite: build the data, train each model of a suite, evaluate, one table.

  python -m musae_jax.tools.reproduce --suite=cpu --midi_dir=DIR [--genres=FILE] --out=DIR
  ./launch.sh --module=musae_jax.tools.reproduce -- --suite=paper --midi_dir=DIR --out=DIR
      (cluster: trains in every process), then the same command as one process with
      --stage=evaluate

Suites (configs/<name>.py):
  cpu     corpus_2bar, corpus_16bar, corpus_16bar_gm: the paper's architecture at a size that
          trains on a 2-core CPU in hours (RESULTS.md holds what they reached);
  paper   2bar, 16bar, 16bar_gm: the paper's sizes, for accelerators.

Layout of --out:
  tfds/                 the windows datasets built from --midi_dir (once, then reused)
  runs/<config name>/   each training run; running the suite again resumes where it stopped
  eval/<config name>/   evaluate.py's report of the run on the whole validation split
  curves/<name>.png     learning curves from the run's metrics.jsonl
  results.md, results.json   the paper's Table 1 beside ours, with two baselines per run

Baselines (what a number means): "majority" predicts, for every track and step position of the
window, the token most frequent there in the training split (the best a decoder that ignores z
can do token by token); "prior mean" decodes the prior's mean code for every window (0 for the
Gaussian; for the flower prior the mean of the window's genre component, so the decoder gets
the genre but nothing from the encoder).
"""

import importlib
import json
import os
import platform
import subprocess
import time

from absl import flags
from absl import logging
import numpy as np

from data_pipeline.tokens import NUM_CLASSES, TRACKS
from musae_common import cli
from musae_common.errors import UserError
from musae_jax import default_config

SUITES = {
    "cpu": ("corpus_2bar", "corpus_16bar", "corpus_16bar_gm"),
    "paper": ("2bar", "16bar", "16bar_gm"),
}
PITCHED = TRACKS[1:]

# The paper's Table 1 (MusAE's accuracy on LMD-matched validation windows), by (bars, prior).
# The 2-bar row gives drums and "melody" (one number for the pitched tracks).
PAPER_TABLE1 = {
    (2, "gaussian"): {"drums": 0.999, "pitched": 0.991},
    (16, "gaussian"): {"drums": 0.773, "bass": 0.763, "guitar": 0.710, "strings": 0.802,
                       "mean": 0.762, "mean_dbg": 0.749},
    (16, "flower"): {"drums": 0.911, "bass": 0.880, "guitar": 0.797, "strings": 0.825,
                     "mean": 0.853, "mean_dbg": 0.863},
}


def load_config(name: str, midi_dir: str, genres_file: str | None, out: str,
                overrides: list[str]):
  """configs/<name>.py's config, pointed at the suite's data and with --set overrides applied."""
  try:
    module = importlib.import_module(f"configs.{name}")
  except ModuleNotFoundError as error:
    raise UserError(f"the suite's config configs/{name}.py does not import ({error}).")
  config = module.get_config()
  config.data.midi_dir = midi_dir
  config.data.genres_file = genres_file or ""
  config.data.data_dir = os.path.join(out, "tfds")
  for item in overrides:
    field, equals, text = item.partition("=")
    if not equals:
      raise UserError(f"--set={item}: expected FIELD=VALUE (e.g. model.hidden_size=64).")
    try:
      default_config.override(config, {field: text})
    except UserError as error:
      raise UserError(f"--set={item}: {error}") from None
  return config


def train_run(config, workdir: str, num_train_steps: int) -> None:
  """Trains (or resumes) one run of the suite."""
  from musae_jax import train  # pylint: disable=g-import-not-at-top
  if num_train_steps:
    config.num_train_steps = num_train_steps
  logging.info("Training %s in %s (%d steps).", config.name, workdir, config.num_train_steps)
  train.train_and_evaluate(config, workdir)


def majority_tokens(data_dir: str, bars: int) -> np.ndarray:
  """uint8 [T, 4]: each track's most frequent token at each step position, in the train split."""
  from musae_jax.tools import input_windows  # pylint: disable=g-import-not-at-top
  tokens = input_windows.split_windows(data_dir, bars, "train").tokens.astype(np.int64)
  steps = tokens.shape[1]
  cell = (np.arange(steps)[:, None] * len(TRACKS) + np.arange(len(TRACKS))[None, :])
  counts = np.bincount((cell[None] * NUM_CLASSES + tokens).ravel(),
                       minlength=steps * len(TRACKS) * NUM_CLASSES)
  return counts.reshape(steps, len(TRACKS), NUM_CLASSES).argmax(axis=-1).astype(np.uint8)


def prior_mean_codes(run, genres: np.ndarray) -> np.ndarray:
  """[N, N_z]: the prior's mean code for each window (see the module docstring)."""
  from musae_jax import priors  # pylint: disable=g-import-not-at-top
  if run.prior != "flower":
    return np.zeros((len(genres), run.latent_size), np.float32)
  # The window's first tag in vocabulary order, or the last ("unlabeled") component.
  tagged = genres > 0
  components = np.where(tagged.any(axis=1), tagged.argmax(axis=1), run.num_components - 1)
  means = np.asarray(priors.flower_means(run.num_components, run.latent_size))
  return means[components].astype(np.float32)


def scores_of(predicted: np.ndarray, target: np.ndarray) -> dict:
  from musae_jax.tools import music_metrics  # pylint: disable=g-import-not-at-top
  counts = music_metrics.ReconstructionCounts()
  counts.update(predicted, target)
  return with_pitched_means(counts.scores())


def with_pitched_means(scores: dict) -> dict:
  """Adds "pitched" (mean over bass, guitar, strings) to every score family."""
  for family in ("accuracy", "note_accuracy", "onset_f1"):
    values = [scores[family][t] for t in PITCHED if scores[family][t] is not None]
    scores[family]["pitched"] = float(np.nanmean(values)) if values else None
  return scores


def run_wall_time(metrics_path: str, up_to_step: int | None = None) -> dict:
  """Training time, steps and steps/s from a run's metrics.jsonl (resumed runs included), up to
  a step (default: all of it)."""
  lines = [json.loads(line) for line in open(metrics_path, encoding="utf-8")]
  train = [l for l in lines if "train/steps_per_s" in l
           and (up_to_step is None or l["step"] <= up_to_step)]
  if not train:
    return {}
  seconds, previous = 0.0, 0
  for line in train:  # Each log line covers the steps since the previous one at its speed.
    seconds += (line["step"] - previous) / max(line["train/steps_per_s"], 1e-9)
    previous = line["step"]
  return {"steps": train[-1]["step"], "train_hours": seconds / 3600.0,
          "steps_per_s_median": float(np.median([l["train/steps_per_s"] for l in train]))}


def evaluate_run(config, workdir: str, out: str, majority: np.ndarray, max_windows: int,
                 num_pairs: int, step: int | None = None) -> dict:
  """The run's evaluation report on the validation split (its newest checkpoint, or the given
  step), its baselines and learning curves."""
  from musae_jax.tools import evaluate  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import input_windows  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import runs  # pylint: disable=g-import-not-at-top
  from musae_jax.tools import plots  # pylint: disable=g-import-not-at-top
  run = runs.load_run(workdir, step)
  windows = input_windows.split_windows(config.data.data_dir, run.bars, "validation", max_windows)
  report_dir = os.path.join(out, "eval", config.name)
  metrics = evaluate.evaluate(run, windows, report_dir, num_pairs=num_pairs)
  model = with_pitched_means({k: metrics[k] for k in ("accuracy", "note_accuracy", "onset_f1")})
  majority_scores = scores_of(np.broadcast_to(majority, windows.tokens.shape), windows.tokens)
  prior_scores = scores_of(run.decode(prior_mean_codes(run, windows.genres)), windows.tokens)
  curves = plots.learning_curves(os.path.join(workdir, "metrics.jsonl"),
                                 os.path.join(out, "curves", f"{config.name}.png"),
                                 title=config.name)
  return {
      "name": config.name, "bars": run.bars, "prior": run.prior, "step": run.step,
      "windows": metrics["num_windows"], "songs": metrics["num_songs"],
      "model": model, "majority": majority_scores, "prior_mean": prior_scores,
      "interpolation": metrics["interpolation"], "genre_probe": {
          k: metrics["genre_probe"].get(k) for k in ("accuracy", "chance")},
      "timing": run_wall_time(os.path.join(workdir, "metrics.jsonl"), run.step),
      "report": os.path.relpath(os.path.join(report_dir, "report.md"), out),
      "curves": os.path.relpath(curves, out),
      "size": {k: config.model[k] for k in ("hidden_size", "latent_size", "encoder_layers",
                                            "decoder_layers")} | {"batch": config.batch_size},
  }


def _cell(value) -> str:
  return "–" if value is None else f"{value:.3f}"


def results_markdown(results: list[dict], environment: dict) -> str:
  """results.md: per run, ours beside the paper and the two baselines."""
  lines = ["# Reproduction results", "",
           f"Commit {environment['commit']}; {environment['cpu']} ({environment['cores']} cores); "
           f"JAX {environment['jax']}; {environment['date']}. Validation split: songs whose "
           "artists are not in the training split when the corpus has a manifest.csv.", "",
           "Accuracy is MusAE's (every step, hold/silent included); note accuracy counts the "
           "steps whose target starts a note; onset F1 also penalises extra onsets. "
           "\"pitched\" = mean over bass, guitar, strings.", ""]
  header = ("| | drums | bass | guitar | strings | mean | pitched | note drums | note pitched "
            "| onset F1 mean |")
  for result in results:
    timing = result["timing"]
    size = result["size"]
    lines += [f"## {result['name']} ({result['bars']} bars, {result['prior']} prior)", "",
              f"Step {result['step']} ({timing.get('train_hours', 0):.2f} h of training at "
              f"{timing.get('steps_per_s_median', 0):.2f} steps/s); N_h {size['hidden_size']}, "
              f"N_z {size['latent_size']}, {size['encoder_layers']}+{size['decoder_layers']} "
              f"layers, batch {size['batch']}; {result['windows']} validation windows from "
              f"{result['songs']} songs.", "", header, "|---" * 10 + "|"]
    paper = dict(PAPER_TABLE1.get((result["bars"], result["prior"]), {}))
    if all(t in paper for t in PITCHED):
      paper["pitched"] = float(np.mean([paper[t] for t in PITCHED]))
    if paper:
      lines.append("| paper (LMD) | " + " | ".join(_cell(paper.get(k)) for k in (
          "drums", "bass", "guitar", "strings", "mean", "pitched")) + " | | | |")
    for label, key in (("**ours**", "model"), ("majority baseline", "majority"),
                       ("prior-mean baseline", "prior_mean")):
      s = result[key]
      lines.append(f"| {label} | " + " | ".join(_cell(s["accuracy"][k]) for k in (
          "drums", "bass", "guitar", "strings", "mean", "pitched")) + " | " + " | ".join([
              _cell(s["note_accuracy"]["drums"]), _cell(s["note_accuracy"]["pitched"]),
              _cell(s["onset_f1"]["mean"])]) + " |")
    curve = result["interpolation"]
    probe = result["genre_probe"]
    lines += ["", "Interpolation (normalised Hamming distance to x₁ at α = 0, 0.5, 1): latent "
              f"{_cell(curve['latent_hamming'][0])} / "
              f"{_cell(curve['latent_hamming'][len(curve['alpha']) // 2])} / "
              f"{_cell(curve['latent_hamming'][-1])}, monotone: "
              f"{'yes' if bool(np.all(np.diff(curve['latent_hamming']) >= -1e-3)) else 'no'}. "
              f"Genre probe: {_cell(probe['accuracy'])} (chance {_cell(probe['chance'])}).", "",
              f"Report: [{result['report']}]({result['report']}); learning curves: "
              f"![{result['name']}]({result['curves']})", ""]
  return "\n".join(lines)


def environment_description() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    pass
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
  return {"commit": commit, "cpu": cpu, "cores": os.cpu_count(), "jax": jax.__version__,
          "date": time.strftime("%Y-%m-%d")}


def _merge_with_earlier(path: str, results: list[dict], order: list[str]) -> list[dict]:
  """This call's results and those of runs evaluated before in the same folder (the suite's
  order; a run evaluated again replaces its earlier row)."""
  earlier = []
  if os.path.isfile(path):
    try:
      with open(path, encoding="utf-8") as f:
        earlier = json.load(f).get("runs", [])
    except (OSError, ValueError, AttributeError):
      logging.warning("%s is unreadable; the table holds this call's runs only.", path)
  by_name = {r["name"]: r for r in earlier if isinstance(r, dict) and "name" in r}
  by_name.update({r["name"]: r for r in results})
  rank = {name: i for i, name in enumerate(order)}
  return sorted(by_name.values(), key=lambda r: rank.get(r["name"], len(rank)))


def run_suite(suite: str, midi_dir: str, genres_file: str | None, out: str, *,
              stage: str = "all", num_train_steps: int = 0, max_eval_windows: int = 0,
              num_pairs: int = 256, overrides: list[str] = (), only: list[str] = (),
              eval_step: int = 0) -> list[dict]:
  """Builds, trains and evaluates the suite's runs; writes results.md/json (process 0).

  Runs evaluated by an earlier call with the same --out stay in the table (a run evaluated again
  replaces its row), so runs can be evaluated one at a time. eval_step > 0 evaluates that
  checkpoint step of every run instead of its newest (e.g. two runs compared at equal steps).
  """
  import jax  # pylint: disable=g-import-not-at-top
  from data_pipeline import build as data_build  # pylint: disable=g-import-not-at-top
  if suite not in SUITES:
    raise UserError(f"--suite={suite!r}; expected one of {sorted(SUITES)}.")
  names = [n for n in SUITES[suite] if not only or n in only]
  if only and set(only) - set(names):
    raise UserError(f"--runs={','.join(only)}: the {suite} suite has {', '.join(SUITES[suite])}.")
  if not os.path.isdir(midi_dir):
    raise UserError(f"--midi_dir={midi_dir}: not a folder.")
  if genres_file and not os.path.isfile(genres_file):
    raise UserError(f"--genres={genres_file}: no such file.")
  configs = [load_config(n, midi_dir, genres_file, out, list(overrides)) for n in names]
  workdirs = [os.path.join(out, "runs", c.name) for c in configs]
  if stage == "evaluate" and jax.process_count() > 1:
    raise UserError("--stage=evaluate runs as one process (restoring a run is collective in a "
                    "multi-process job); start it without launch.sh.")
  if stage == "evaluate":  # Before any dataset is built for it.
    for workdir in workdirs:
      if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise UserError(f"{workdir}: no trained run there; train it first (--stage=train or "
                        "all), or check --out and --runs.")
  if stage in ("all", "train"):
    for config, workdir in zip(configs, workdirs):
      train_run(config, workdir, num_train_steps)
  if stage == "train":
    return []
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      logging.warning("Trained in %d processes; evaluate as one process: python -m "
                      "musae_jax.tools.reproduce --stage=evaluate with the same flags.",
                      jax.process_count())
    return []
  results, majorities = [], {}
  for config, workdir in zip(configs, workdirs):
    bars = config.data.bars
    if bars not in majorities:
      from data_pipeline import loader  # pylint: disable=g-import-not-at-top
      if not loader.dataset_exists(config.data.data_dir, bars):
        data_build.build_dataset(midi_dir, config.data.data_dir, bars, genres_file=genres_file,
                                 workers=config.data.build_workers)
      majorities[bars] = majority_tokens(config.data.data_dir, bars)
    logging.info("Evaluating %s.", workdir)
    results.append(evaluate_run(config, workdir, out, majorities[bars], max_eval_windows,
                                num_pairs, eval_step or None))
  environment = environment_description()
  table = _merge_with_earlier(os.path.join(out, "results.json"), results, SUITES[suite])
  with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"environment": environment, "runs": table}, f, indent=1)
  with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
    f.write(results_markdown(table, environment))
  return results


def define_flags() -> None:
  """The command-line flags (defined only when run as a program)."""
  flags.DEFINE_enum("suite", "cpu", list(SUITES), "Which models: cpu (corpus_*) or paper.")
  flags.DEFINE_string("midi_dir", None, "MIDI folder the datasets are built from.")
  flags.DEFINE_string("genres", None, "Genre labels: JSON {relative path: [tags]} (optional).")
  flags.DEFINE_string("out", None, "Output folder (datasets, runs, reports, results.md).")
  flags.DEFINE_enum("stage", "all", ["all", "train", "evaluate"], "What to run.")
  flags.DEFINE_list("runs", [], "Only these configs of the suite (default: all).")
  flags.DEFINE_integer("num_train_steps", 0, "Override every run's step count (0 = configs').")
  flags.DEFINE_integer("max_eval_windows", 0, "Random subset of validation windows (0 = all).")
  flags.DEFINE_integer("num_pairs", 256, "Interpolation pairs per run.")
  flags.DEFINE_integer("eval_step", 0, "Evaluate this checkpoint step of each run (0 = newest).")
  flags.DEFINE_multi_string("set", [], "FIELD=VALUE config override for every run, "
                            "e.g. --set=batch_size=512.")
  flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-process).")
  flags.DEFINE_integer("num_processes", 0, "Processes in a multi-process run.")
  flags.DEFINE_integer("process_id", -1, "This process's index in a multi-process run.")


def main(argv):
  f = flags.FLAGS

  def body():
    from musae_jax import sharding  # pylint: disable=g-import-not-at-top
    sharding.initialize_distributed(f.coordinator_address, f.num_processes, f.process_id)
    return run_suite(f.suite, f.midi_dir, f.genres, f.out, stage=f.stage,
                     num_train_steps=f.num_train_steps, max_eval_windows=f.max_eval_windows,
                     num_pairs=f.num_pairs, overrides=f.set, only=f.runs,
                     eval_step=f.eval_step)

  results = cli.run_tool(argv, body, logging.INFO)
  for result in results:
    print(f"{result['name']}: accuracy mean {result['model']['accuracy']['mean']:.3f} "
          f"(majority {result['majority']['accuracy']['mean']:.3f}, prior mean "
          f"{result['prior_mean']['accuracy']['mean']:.3f}), note accuracy drums "
          f"{_cell(result['model']['note_accuracy']['drums'])}, pitched "
          f"{_cell(result['model']['note_accuracy']['pitched'])}")
  if results:
    print(f"Table: {os.path.join(f.out, 'results.md')}")


def console_main() -> None:
  """The musae-reproduce console script."""
  cli.run_console(main, __name__, define_flags, ["midi_dir", "out"])


if __name__ == "__main__":
  console_main()
