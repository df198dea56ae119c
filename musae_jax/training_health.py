"""Warnings for a training run that stalls: it never stops silently on a plateau.

Three failures seen on real data (RESULTS.md, "What made the paper's architecture learn"):
  plateau          reconstruction stops improving (e.g. 3-layer stacks without residual
                   connections sit at the majority-token level for thousands of steps);
  saturated critic its input gradient vanishes, so the gradient penalty (||grad|| - 1)^2 sits at
                   1 and the encoder gets no adversarial signal;
  runaway critic   the critic's Wasserstein estimate grows without bound (codes drift away
                   from the prior while beta is 0, or the critic overpowers the encoder); its
                   gradient then hits the encoder hard when beta turns on.

The monitor reads the averaged metrics of each log interval and returns one line per problem
found; the trainer logs them as warnings and writes them to metrics.jsonl as `health/*` flags.
"""

import dataclasses

import ml_collections


@dataclasses.dataclass
class _Plateau:
  best: float = float("inf")  # Lowest reconstruction loss seen.
  best_step: int = 0
  warned_at_best: float | None = None  # The best value when the last plateau warning was given.


class TrainingHealth:
  """Checks each log interval's averaged training metrics against config.health."""

  def __init__(self, health: ml_collections.ConfigDict, first_step: int = 0):
    self.health = health
    self._plateau = _Plateau(best_step=first_step)
    self._saturated_logs = 0

  def check(self, step: int, metrics: dict[str, float]) -> dict[str, str]:
    """{flag: message} for every problem of this interval (empty when training is healthy)."""
    problems = {}
    reconstruction = metrics.get("loss/reconstruction")
    if reconstruction is not None:
      plateau = self._plateau
      if reconstruction < plateau.best * (1.0 - self.health.plateau_min_improvement):
        plateau.best, plateau.best_step = reconstruction, step
      elif reconstruction < plateau.best:
        plateau.best = reconstruction
      stalled = step - plateau.best_step
      if stalled >= self.health.plateau_steps and plateau.warned_at_best != plateau.best:
        plateau.warned_at_best = plateau.best
        problems["plateau"] = (
            f"reconstruction loss has not improved by {self.health.plateau_min_improvement:.1%} "
            f"in {stalled} steps (best {plateau.best:.4f}); if accuracy is near the majority "
            "token's, the decoders ignore z (deep stacks: config.model.residual, "
            "config.model.initial_posterior_std).")
    penalty = metrics.get("loss/gradient_penalty")
    if penalty is not None and penalty >= self.health.saturated_penalty:
      self._saturated_logs += 1
      if self._saturated_logs >= 2:
        problems["critic_saturated"] = (
            f"gradient penalty {penalty:.3f} (1.0 = the critic's input gradient vanished): the "
            "critic is saturated and the encoder gets no adversarial signal; lower the learning "
            "rate or config.optim.gradient_penalty_weight.")
    else:
      self._saturated_logs = 0
    critic = metrics.get("loss/critic")
    if critic is not None and abs(critic) > self.health.runaway_critic_loss:
      problems["critic_runaway"] = (
          f"critic loss {critic:.1f} (|loss| > {self.health.runaway_critic_loss:g}): the codes "
          "are far from the prior; the adversarial term will pull hard when beta grows "
          "(a finer beta schedule keeps them close from the start).")
    return problems
