"""The 16-steps-per-bar grid and the 130-state monophonic tokens.

A token matrix has shape [steps, 4], one column per track in TRACKS order. Each
entry is one of 130 classes:
  0..127  a note starting at that MIDI pitch at this step,
  128     SILENT: no note sounds,
  129     HOLD: the note that sounded at the previous step goes on.
"""

NUM_PITCHES = 128  # MIDI pitches 0..127 are the onset classes.
SILENT = 128  # No note sounds at this step.
HOLD = 129  # The previous step's note goes on.
NUM_CLASSES = 130  # Classes per track and step.
STEPS_PER_QUARTER = 4  # Grid resolution: a sixteenth note per step.
STEPS_PER_BAR = 16  # Only 4/4 songs are kept, so a bar is 4 quarters.
TRACKS = ("drums", "bass", "guitar", "strings")  # Column order of every token matrix.
NUM_TRACKS = len(TRACKS)
