r"""The GPU check: one command that turns a few minutes on one GPU into numbers.

  python benchmarks/gpu_check.py --prepare=gpu_bundle --midi_dir=../shared/data/midi \
      --genres=../shared/data/genres.json        # here, once: the files that travel
  python benchmarks/gpu_check.py --out=DIR --data_dir=gpu_bundle/tfds \
      --wheels=gpu_bundle/wheels [--budget_s=280]  # on the GPU machine
  python benchmarks/gpu_check.py --dry_run --out=DIR --data_dir=TFDS   # the same path on CPU

In this order, each item in a subprocess with what is left of --budget_s as its time limit (an
item that does not fit is recorded as skipped, never silently dropped):
  1. The training step at the paper's 2-bar size (N_h 1024, N_z 512, batch 256; musae_jax.benchmark)
     for our step on the "scan" kernel in float32 (TF32 under JAX's default precision) and in
     bfloat16, for the PyTorch port with cuDNN in float32 and under autocast bf16, and for our
     step on the "cudnn" kernel (jax.experimental.rnn), with the achieved TFLOP/s.
  2. A short training of configs/2bar.py (the paper's 2-bar model) on the carried dataset: as
     many steps as --train_s allows at the step time just measured, then its validation accuracy
     and note accuracy on --eval_batches batches of the validation split.
  3. Item 1 at the paper's 16-bar size (batch 256, 256 steps per window).
  4. Our bfloat16 step at both sizes with XLA's command buffers for while loops (CUDA graphs).
Results: DIR/gpu_check.json (every record, the environment, the budget spent) and
DIR/train_metrics.jsonl (the short training's metrics); the run's workdir stays in a temporary
folder, so at most these two files come back.

--dry_run runs the same code at tiny sizes on whatever backend there is (the cuDNN kernel then
runs through its pure-JAX reference, the port on the CPU if torch is installed); it is part of
the test suite (tests/test_gpu_check.py), so the check cannot rot between GPU runs.
BENCHMARKS.md ("The GPU check") says which files travel and how to prepare them (--prepare).
"""

import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

REPO = pathlib.Path(__file__).resolve().parents[1]

_OUT = flags.DEFINE_string("out", None, "Folder for gpu_check.json and train_metrics.jsonl.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir holding the 2-bar dataset "
                                "(musae_windows/2bar) the short training reads.")
_TORCH_SCRIPT = flags.DEFINE_string(
    "torch_script", str(REPO / "gpu_bundle" / "torch_musae.py"),
    "The PyTorch port (shared/bench/torch_musae.py; --prepare copies it beside the code).")
_BUDGET_S = flags.DEFINE_float("budget_s", 280.0, "Wall time for everything, in seconds.")
_TRAIN_S = flags.DEFINE_float("train_s", 120.0, "Seconds of training steps in item 2.")
_EVAL_BATCHES = flags.DEFINE_integer("eval_batches", 20, "Validation batches after training.")
_WHEELS_DIR = flags.DEFINE_string(
    "wheels", None, "Install the wheels in this folder (--prepare's gpu_bundle/wheels) whose "
    "distributions this Python lacks, without their dependencies, before checking.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Tiny sizes, any backend: tests the check itself.")
_PREPARE = flags.DEFINE_string(
    "prepare", None, "Instead of checking: write the files that travel into this folder "
    "(gpu_bundle): the port and the 2-bar dataset of --midi_dir.")
_MIDI_DIR = flags.DEFINE_string("midi_dir", None, "With --prepare: the MIDI folder to build from.")
_GENRES = flags.DEFINE_string("genres", None, "With --prepare: its genres file.")
_MAX_FILES = flags.DEFINE_integer("max_files", 400, "With --prepare: build from every k-th of "
                                  "the sorted MIDI files, at most this many (the bundle's size).")
# Packages the GPU machine's Python lacks (it has jax, flax, optax, orbax, torch and numpy);
# --prepare puts their wheels, with their dependencies, beside the code. pyarrow (a dependency of
# tensorflow-datasets that training never imports, 53 MB) and numpy stay behind.
_WHEELS = ("tensorflow-datasets>=4.9.8,<5", "array-record>=0.7,<0.9", "grain>=0.2.12,<0.3",
           "ml-collections>=1.0,<2", "symusic>=0.5,<0.7", "pretty_midi>=0.2.10,<0.3",
           "tensorboardX>=2.6,<3", "tqdm>=4.66,<5", "absl-py>=2.1,<3")
_WHEELS_LEFT_BEHIND = ("numpy-", "pyarrow-")
_TARGET_PYTHON = flags.DEFINE_string("target_python", "3.12", "With --prepare: the GPU "
                                     "machine's Python version the wheels are for.")

# (name, bars, hidden, latent, batch): the paper's sizes, and the dry run's.
PAPER_SHAPES = (("2bar", 2, 1024, 512, 256), ("16bar", 16, 1024, 512, 256))
DRY_SHAPES = (("2bar", 2, 16, 8, 4), ("16bar", 16, 16, 8, 2))
# Overrides of configs/2bar.py in a dry run (a model that trains in seconds on a CPU).
DRY_TRAIN = {"model.hidden_size": 16, "model.latent_size": 8, "model.critic_hidden_size": 16,
             "batch_size": 8, "model.encoder_layers": 1, "model.decoder_layers": 1}
COMMAND_BUFFER_FLAGS = "--xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL"
_MIN_ITEM_S = 15.0  # An item is not started with less than this left.


class Budget:

  def __init__(self, seconds: float):
    self.end = time.monotonic() + seconds

  def left(self) -> float:
    return self.end - time.monotonic()


def _run(command: list[str], budget: Budget, env_extra: dict | None = None,
         prints_json: bool = True) -> dict:
  """Runs one item; returns its last JSON line (or {} for an item that prints none), or
  {"error": ...} / {"skipped": ...}."""
  limit = budget.left()
  if limit < _MIN_ITEM_S:
    return {"skipped": f"budget: {budget.left():.0f} s left"}
  env = dict(os.environ, PYTHONPATH=str(REPO), **(env_extra or {}))
  start = time.monotonic()
  try:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                            timeout=limit, check=False)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {limit:.0f} s", "wall_s": round(limit, 1)}
  wall_s = round(time.monotonic() - start, 1)
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode != 0 or (prints_json and not lines):
    return {"error": f"exit {result.returncode}: {result.stderr.strip()[-600:]}",
            "wall_s": wall_s}
  record = json.loads(lines[-1]) if lines else {}
  record["wall_s"] = wall_s
  return record


def _ours(shape, impl: str, dtype: str, steps: int) -> list[str]:
  _, bars, hidden, latent, batch = shape
  return [sys.executable, "-m", "musae_jax.benchmark", f"--bars={bars}", f"--hidden={hidden}",
          f"--latent={latent}", f"--batch={batch}", f"--impl={impl}", f"--dtype={dtype}",
          f"--steps={steps}", "--warmup=2"]


def _torch(shape, dtype: str, steps: int, device: str) -> list[str]:
  _, bars, hidden, latent, batch = shape
  return [sys.executable, _TORCH_SCRIPT.value, f"--timesteps={16 * bars}", f"--hidden={hidden}",
          f"--latent={latent}", f"--batch={batch}", f"--dtype={dtype}", f"--steps={steps}",
          "--warmup=2", f"--device={device}"]


def _has_torch() -> bool:
  return (pathlib.Path(_TORCH_SCRIPT.value).exists() and
          subprocess.run([sys.executable, "-c", "import torch"], capture_output=True,
                         check=False).returncode == 0)


def _speed(shape, budget: Budget, steps: int, device: str, has_torch: bool) -> list[dict]:
  """Item 1 (or 3) at one shape: ours and the port, most wanted first."""
  items = [("ours", "scan", "float32", _ours(shape, "scan", "float32", steps)),
           ("ours", "scan", "bfloat16", _ours(shape, "scan", "bfloat16", steps)),
           ("torch", "cudnn" if device == "cuda" else "torch", "float32",
            _torch(shape, "float32", steps, device)),
           ("torch", "cudnn" if device == "cuda" else "torch", "bfloat16",
            _torch(shape, "bfloat16", steps, device)),
           ("ours", "cudnn", "float32", _ours(shape, "cudnn", "float32", steps))]
  records = []
  for program, kernel, dtype, command in items:
    if program == "torch" and not has_torch:
      record = {"skipped": f"torch or {_TORCH_SCRIPT.value} not available"}
    else:
      record = _run(command, budget)
    records.append(_summary(shape, program, kernel, dtype, record))
  return records


def _summary(shape, program: str, kernel: str, dtype: str, record: dict, flags_: str = "") -> dict:
  gflops = record.get("gflop_per_s", record.get("achieved_gflop_per_s"))
  return {"shape": shape[0], "program": program, "kernel": kernel, "dtype": dtype,
          "xla_flags": flags_, "steps_per_s": record.get("steps_per_s"),
          "samples_per_s": record.get("samples_per_s"),
          "tflop_per_s": None if gflops is None else round(gflops / 1e3, 3),
          "step_ms_median": record.get("step_ms_median"), "record": record}


def _train(budget: Budget, step_s: float | None, dry_run: bool) -> tuple[dict, str | None]:
  """Item 2: configs/2bar.py for as many steps as --train_s allows; returns (summary, path of
  its metrics.jsonl)."""
  if not _DATA_DIR.value:
    return {"skipped": "no --data_dir"}, None
  steps = 20 if dry_run else max(10, int(_TRAIN_S.value / step_s)) if step_s else 200
  workdir = tempfile.mkdtemp(prefix="gpu_check_train_")
  overrides = dict(DRY_TRAIN if dry_run else {})
  overrides.update({"num_train_steps": steps, "eval_every_steps": steps,
                    "checkpoint_every_steps": steps, "num_eval_batches": _EVAL_BATCHES.value,
                    "log_every_steps": max(1, steps // 10), "data.data_dir": _DATA_DIR.value,
                    "data.midi_dir": ""})
  command = [sys.executable, "-m", "musae_jax.main", "--config=configs/2bar.py",
             f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in overrides.items()]
  start = time.monotonic()
  record = _run(command, budget, prints_json=False)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  summary = {"steps": steps, "wall_s": round(time.monotonic() - start, 1),
             "config": "configs/2bar.py", "overrides": overrides}
  if not os.path.exists(metrics_path):
    summary["error"] = record.get("error") or record.get("skipped") or "no metrics.jsonl"
    return summary, None
  with open(metrics_path, encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  validation = [r for r in rows if any(k.startswith("validation/") for k in r)]
  if validation:
    last = validation[-1]
    summary["validation"] = {k[len("validation/"):]: v for k, v in last.items()
                             if k.startswith("validation/")}
    summary["validation_step"] = last["step"]
  if "error" in record:
    summary["error"] = record["error"]
  return summary, metrics_path


def _install_missing_wheels(folder: str) -> list[str]:
  """pip-installs the wheels whose distribution is not installed; what is there is kept (the GPU
  machine's jax, torch and their dependencies are not replaced)."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  missing = []
  for name in sorted(os.listdir(folder)):
    if name.endswith(".whl"):
      distribution = name.split("-")[0]
      try:
        metadata.version(distribution)
      except metadata.PackageNotFoundError:
        missing.append(os.path.join(folder, name))
  if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    *missing], check=True)
  return [os.path.basename(path) for path in missing]


def _environment() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  return {"python": platform.python_version(), "jax": jax.__version__,
          "backend": jax.default_backend(),
          "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
          "cpu_count": os.cpu_count()}


def _prepare(folder: str) -> None:
  """Writes the files that travel with the code: the port, the wheels the GPU machine lacks and
  a 2-bar dataset of a subset of --midi_dir."""
  from data_pipeline import build as data_build  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  shared = pathlib.Path(os.environ.get("MUSAE_SHARED", REPO.parent / "shared"))
  shutil.copyfile(shared / "bench" / "torch_musae.py", os.path.join(folder, "torch_musae.py"))
  wheels = os.path.join(folder, "wheels")
  pip = [sys.executable, "-m", "pip"]
  # promise (a tensorflow-datasets dependency) is published as source only: build its wheel.
  subprocess.run(pip + ["wheel", "-q", "--no-deps", "-w", wheels, "promise"], check=True)
  subprocess.run(pip + ["download", "-q", "-d", wheels, "--find-links", wheels,
                        "--python-version", _TARGET_PYTHON.value, "--only-binary=:all:",
                        "--platform", "manylinux_2_28_x86_64", "--platform",
                        "manylinux2014_x86_64", "--platform", "any", *_WHEELS], check=True)
  for name in os.listdir(wheels):
    if name.startswith(_WHEELS_LEFT_BEHIND):
      os.remove(os.path.join(wheels, name))
  if _MIDI_DIR.value:
    files = sorted(p.relative_to(_MIDI_DIR.value) for p in pathlib.Path(_MIDI_DIR.value).rglob("*")
                   if p.suffix.lower() in (".mid", ".midi"))
    subset = files[::max(1, -(-len(files) // _MAX_FILES.value))]
    with tempfile.TemporaryDirectory() as temp:
      for relative in subset:
        (pathlib.Path(temp) / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pathlib.Path(_MIDI_DIR.value) / relative, pathlib.Path(temp) / relative)
      data_build.build_dataset(temp, os.path.join(folder, "tfds"), 2, genres_file=_GENRES.value,
                               manifest=data_build.default_manifest(_MIDI_DIR.value))
  size = sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*") if p.is_file())
  print(f"wrote {folder}: torch_musae.py, wheels/" + (", tfds/" if _MIDI_DIR.value else "") +
        f"; {size / 2**20:.1f} MiB")


def main(argv):
  del argv
  if _PREPARE.value:
    _prepare(_PREPARE.value)
    return
  if not _OUT.value:
    raise app.UsageError("--out is required.")
  budget = Budget(_BUDGET_S.value)
  os.makedirs(_OUT.value, exist_ok=True)
  installed = _install_missing_wheels(_WHEELS_DIR.value) if _WHEELS_DIR.value else []
  dry_run = _DRY_RUN.value
  environment = _environment()
  on_gpu = environment["backend"] == "gpu"
  shapes = DRY_SHAPES if dry_run else PAPER_SHAPES
  steps = 3 if dry_run else 7
  device = "cuda" if on_gpu else "cpu"
  report = {"dry_run": dry_run, "environment": environment, "budget_s": _BUDGET_S.value,
            "installed_wheels": installed, "speed": [], "train": None}
  out_json = os.path.join(_OUT.value, "gpu_check.json")

  def save():
    report["spent_s"] = round(_BUDGET_S.value - budget.left(), 1)
    with open(out_json, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)

  has_torch = _has_torch()
  report["speed"] += _speed(shapes[0], budget, steps, device, has_torch)
  save()
  ours_2bar = [r for r in report["speed"] if r["program"] == "ours" and r["step_ms_median"]]
  step_s = min(r["step_ms_median"] for r in ours_2bar) / 1e3 if ours_2bar else None
  report["train"], metrics_path = _train(budget, step_s, dry_run)
  if metrics_path:
    shutil.copyfile(metrics_path, os.path.join(_OUT.value, "train_metrics.jsonl"))
  save()
  report["speed"] += _speed(shapes[1], budget, steps, device, has_torch)
  save()
  for shape in shapes:
    env = {"XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + COMMAND_BUFFER_FLAGS).strip()}
    # Off a GPU the flag parses and does nothing: the dry run still runs the item's path.
    record = (_run(_ours(shape, "scan", "bfloat16", steps), budget, env) if on_gpu or dry_run
              else {"skipped": "not a GPU"})
    report["speed"].append(_summary(shape, "ours", "scan", "bfloat16", record,
                                    COMMAND_BUFFER_FLAGS))
  save()
  for row in report["speed"]:
    print(f"{row['shape']:>6} {row['program']:>5} {row['kernel']:>6} {row['dtype']:>8} "
          f"{row['xla_flags'][:24]:>24}: "
          + (f"{row['steps_per_s']} steps/s, {row['tflop_per_s']} TFLOP/s"
             if row["steps_per_s"] else str(row["record"])[:120]))
  print(f"train: {report['train']}")
  print(f"wrote {out_json} ({report['spent_s']} s of {_BUDGET_S.value:.0f})")


if __name__ == "__main__":
  app.run(main)
