"""The stall warnings: plateau, saturated critic, runaway critic; and that training reports them."""

import json


from configs import default
from musae_jax import train
from musae_jax.training_health import TrainingHealth
from tests import train_helpers


def _health(**overrides) -> TrainingHealth:
  health = default.get_config().health
  health.update(overrides)
  return TrainingHealth(health)


def test_plateau_is_reported_once_per_stall_and_not_while_improving():
  health = _health(plateau_steps=300, plateau_min_improvement=0.01)
  improving = [health.check(step, {"loss/reconstruction": 10.0 * 0.95 ** (step // 100)})
               for step in range(100, 1100, 100)]
  assert not any(improving)
  # Flat from step 1100 on (tiny wiggles below the 1% threshold do not count as progress).
  flat = {step: health.check(step, {"loss/reconstruction": 5.0 - 1e-4 * (step % 300 == 0)})
          for step in range(1100, 2100, 100)}
  warned = [step for step, problems in flat.items() if "plateau" in problems]
  assert warned and warned[0] == 1400  # 5.0 first seen at 1100, +300 steps without 1%.
  assert len(warned) <= 3  # Once per new best value, not at every log line.
  assert "has not improved" in flat[warned[0]]["plateau"]
  # Progress clears it.
  assert not health.check(2100, {"loss/reconstruction": 3.0})


def test_saturated_critic_needs_two_intervals_and_runaway_critic_is_immediate():
  health = _health()
  assert health.check(100, {"loss/gradient_penalty": 1.0, "loss/critic": -2.0}) == {}
  problems = health.check(200, {"loss/gradient_penalty": 0.999, "loss/critic": -2.0})
  assert list(problems) == ["critic_saturated"]
  assert health.check(300, {"loss/gradient_penalty": 0.2, "loss/critic": -2.0}) == {}
  problems = health.check(400, {"loss/gradient_penalty": 4.75, "loss/critic": -101.0})
  assert "critic_runaway" in problems and "-101.0" in problems["critic_runaway"]


def test_training_writes_the_plateau_flag_when_nothing_is_learned(demo_data_dir, tmp_path):
  # A learning rate of 1e-9 leaves the demo model where it started: a real plateau.
  config = train_helpers.tiny_config(demo_data_dir, **{
      "optim.learning_rate": 1e-9, "health.plateau_steps": 4, "num_train_steps": 12})
  train.train_and_evaluate(config, str(tmp_path))
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  flagged = [l["step"] for l in lines if l.get("train/health/plateau") == 1.0]
  assert flagged and flagged[0] >= 8
  # A model that learns (the demo's own learning rate) is not flagged in the same steps.
  config = train_helpers.tiny_config(demo_data_dir, **{"health.plateau_steps": 4,
                                                       "num_train_steps": 12})
  train.train_and_evaluate(config, str(tmp_path / "learning"))
  lines = (tmp_path / "learning" / "metrics.jsonl").read_text().splitlines()
  assert not any("health/plateau" in l for l in lines)
