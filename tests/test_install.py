"""A plain (non-editable) install outside the checkout: every console script starts, the
benchmark runs on a tiny shape, the reproduction suite runs on the demo songs, and the installed
package, not the checkout, is what runs.

The project is installed with --no-deps into a fresh virtual environment that sees this
environment's packages through a .pth file (the dependencies are already installed here; the
test must not depend on the network), and every command runs from a folder outside the checkout.
"""

import json
import os
import pathlib
import site
import subprocess
import venv

import pytest

from tests import train_helpers

REPO = pathlib.Path(__file__).resolve().parents[1]
# Each console script and one of its own flags, which its --help must list.
SCRIPTS = {"musae-train": "--config", "musae-build": "--midi_dir", "musae-benchmark": "--bars",
           "musae-generate": "--mode", "musae-evaluate": "--split", "musae-attributes": "--quantile",
           "musae-reproduce": "--suite", "musae-explore": "--port"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(bin folder, a working folder outside the checkout, site-packages) of a fresh venv with
  the project installed in it."""
  root = tmp_path_factory.mktemp("install")
  env_dir = root / "venv"
  venv.EnvBuilder(with_pip=True).create(env_dir)
  python = env_dir / "bin" / "python"
  target_site = pathlib.Path(subprocess.check_output(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      text=True).strip())
  # This environment's packages (jax, flax, ...) without its editable musae_jax: a path listed
  # in a .pth is put on sys.path, but the .pth files inside it (the editable finder) are not run.
  (target_site / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
  # Python 3.11's venv comes with setuptools 65, older than the build needs (pyproject's
  # build-system): without it, the build uses this environment's (the test extra's).
  subprocess.run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"],
                 capture_output=True, check=True)
  build = subprocess.run(
      [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
       "--no-cache-dir", str(REPO)],
      capture_output=True, text=True, cwd=root, check=False)
  assert build.returncode == 0, build.stdout + build.stderr
  work = root / "work"
  work.mkdir()
  return env_dir / "bin", work, target_site


def _run(command, cwd, **kwargs):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=300, check=False, **kwargs)


def test_the_installed_package_runs_not_the_checkout(installed):
  bin_dir, work, target_site = installed
  result = _run([bin_dir / "python", "-c",
                 "import musae_jax.tools.explore as e, data_pipeline as d, musae_common as m, "
                 "configs.corpus_2bar as c; print(e.STATIC_DIR); "
                 "print(e.__file__, d.__file__, m.__file__, c.__file__)"], work)
  assert result.returncode == 0, result.stderr
  static_dir, *files = result.stdout.split()
  for file in files:
    assert file.startswith(str(target_site)), file
  # The explorer's page and vendored synth are package data.
  assert (pathlib.Path(static_dir) / "index.html").is_file()
  assert (pathlib.Path(static_dir) / "vendor" / "Tone.js").is_file()


@pytest.mark.parametrize("script,flag", SCRIPTS.items())
def test_console_script_help(installed, script, flag):
  bin_dir, work, _ = installed
  assert (bin_dir / script).is_file(), f"{script} was not installed"
  result = _run([bin_dir / script, "--help"], work)
  assert result.returncode in (0, 1), result.stdout + result.stderr  # absl's --help exits 1.
  assert "Traceback" not in result.stderr, result.stderr
  assert flag in result.stdout, result.stdout


def test_benchmark_runs_on_a_tiny_shape(installed):
  bin_dir, work, _ = installed
  result = _run([bin_dir / "musae-benchmark", "--bars=2",
                 "--hidden=16", "--latent=8", "--batch=4", "--layers=1", "--steps=1",
                 "--warmup=0"], work)
  assert result.returncode == 0, result.stdout + result.stderr
  record = json.loads(result.stdout.strip().splitlines()[-1])
  assert record["samples_per_s"] > 0 and record["config"]["hidden"] == 16


def test_a_user_error_is_one_line_and_exit_status_2(installed):
  bin_dir, work, _ = installed
  result = _run([bin_dir / "musae-build",
                 f"--midi_dir={work / 'missing'}", f"--data_dir={work / 'out'}"], work)
  assert result.returncode == 2, result.stdout + result.stderr
  assert "Traceback" not in result.stderr
  assert str(work / "missing") in result.stderr


def test_reproduce_runs_the_suite_outside_the_checkout(installed):
  """The suite's configs ship with the package, so musae-reproduce runs from any folder."""
  bin_dir, work, _ = installed
  demo = REPO / "demo_data"
  tiny = [f"--set={name}={value}" for name, value in train_helpers.TINY.items()]
  result = _run([bin_dir / "musae-reproduce", "--runs=corpus_2bar", f"--midi_dir={demo / 'midi'}",
                 f"--genres={demo / 'genres.json'}", f"--out={work / 'repro'}",
                 "--num_train_steps=2", "--max_eval_windows=16", "--num_pairs=2", *tiny], work)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "## corpus_2bar (2 bars, gaussian prior)" in (work / "repro" / "results.md").read_text()
