"""The TFDS dataset musae_windows (configs 2bar, 16bar); importing it registers the builder."""

from data_pipeline.musae_windows.builder import BuildError
from data_pipeline.musae_windows.builder import MusaeWindows

__all__ = ["BuildError", "MusaeWindows"]
