"""Training and validation metrics to JSONL and TensorBoard event files (no TensorFlow needed)."""

import json
import os
import time

import jax
import numpy as np
from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends {"step", "time", metrics...} to workdir/metrics.jsonl and TensorBoard scalars.

  Only process 0 writes; other processes get a writer that does nothing, so callers need no
  branches.
  """

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    if not self._active:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    self._tensorboard = SummaryWriter(logdir=workdir)

  def write(self, step: int, metrics: dict[str, float], prefix: str = "") -> None:
    if not self._active:
      return
    scalars = {prefix + k: float(np.asarray(v)) for k, v in metrics.items()}
    self._jsonl.write(json.dumps({"step": int(step), "time": time.time(), **scalars}) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, int(step))
    self._tensorboard.flush()

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tensorboard.close()
