"""What must not change when the code is reorganised: checkpoints written by earlier code still
load, and the same config and seed still train to bitwise the same parameters.

The reference files (tests/data/golden_35b2c18/, written by tests/make_golden_params.py at
commit 35b2c18) hold a tiny run's checkpoint and the final parameters of three tiny trainings.
Bitwise identity is a property of one CPU model and one jax build (XLA's CPU code and its dot
libraries depend on the CPU's vector features and its microarchitecture: an AMD Zen 5 with the
same flags as the recording Zen 4 trains to other bits), so the training comparison runs where
the recorded environment (jax, CPU vendor, family, model and features) matches and is skipped,
with the reason, elsewhere. Loading the recorded checkpoint is checked everywhere.
"""

import json

import numpy as np
import pytest

from musae_jax import priors
from musae_jax.tools import runs
from tests import golden_environment
from tests import make_golden_params
from tests.train_helpers import REPO

GOLDEN = REPO / "tests" / "data" / "golden_35b2c18"


def _assert_same_arrays(actual: dict, expected) -> None:
  assert sorted(actual) == sorted(expected.files)
  different = [k for k in expected.files if not np.array_equal(actual[k], expected[k])]
  assert not different, f"{len(different)} arrays differ, e.g. {different[:3]}"


def test_a_checkpoint_written_by_earlier_code_loads_unchanged():
  run = runs.load_run(str(GOLDEN / "run"))
  assert run.step == 12 and run.prior == "flower"
  _assert_same_arrays(make_golden_params.flat_params(run.params),
                      np.load(GOLDEN / "fused_flower.npz"))
  codes = runs.prior_codes(run, seed=0, num=3)
  tokens = run.decode(codes)
  assert tokens.shape == (3, run.num_steps, 4)
  assert priors.nearest_component(codes, run.num_components).shape == (3,)


@pytest.mark.parametrize("case", ["scan_flower", "scan_gauss_deep"])
def test_training_is_bitwise_identical_to_the_recorded_parameters(demo_data_dir, tmp_path, case):
  recorded = json.loads((GOLDEN / "environment.json").read_text())
  if golden_environment.environment() != recorded:
    pytest.skip(f"the parameters were recorded on {recorded}; this machine is "
                f"{golden_environment.environment()} (bitwise identity holds per machine)")
  params = make_golden_params.train_case(demo_data_dir, str(tmp_path),
                                         make_golden_params.CASES[case])
  _assert_same_arrays(params, np.load(GOLDEN / f"{case}.npz"))
