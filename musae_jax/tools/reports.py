"""What the tools' JSON reports share: values made JSON-safe (strict JSON has no NaN/Inf)."""

import numpy as np


def json_safe(value):
  """A copy with numpy scalars as Python numbers and NaN/Inf floats as None (null)."""
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if isinstance(value, (float, np.floating)):
    return float(value) if np.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value
