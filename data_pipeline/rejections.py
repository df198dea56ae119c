"""Why a song cannot become training windows: RejectedSong and its reasons.

Every layer of the per-song path raises it (midi_io for a broken file, tracks for the song
filter, song for what is left), so it has its own module below them all.
"""

from musae_common.errors import UserError

# Stable short keys for RejectedSong.reason (build statistics count them).
REASONS = (
    "unreadable",  # the file could not be opened or read
    "empty",  # 0-byte file, or a MIDI file without any note
    "not_midi",  # no MThd header: some other kind of file
    "truncated",  # a chunk or a declared track is missing bytes
    "corrupt",  # malformed chunk, event or meta event
    "unsupported",  # valid MIDI we cannot grid (SMPTE time division)
    "too_long",  # longer than MAX_BARS: would not fit the memory budget
    "not_4_4",  # some time-signature event is not 4/4
    "no_drums",
    "no_bass",
    "no_guitar",
    "no_strings",
    "too_short",  # fewer bars than one window
)


class RejectedSong(UserError):
  """A song that cannot or must not become training windows.

  `reason` is one of REASONS; str(exc) is one line naming the file and why,
  e.g. "data/x.mid: rejected: time signature 3/4 at bar 1 (only 4/4 is
  supported)". Lower layers raise it without a path; song.py fills it in.
  """

  def __init__(self, reason: str, detail: str, path: str = ""):
    super().__init__(reason, detail, path)
    assert reason in REASONS, reason
    self.reason = reason
    self.detail = detail
    self.path = path

  def __str__(self) -> str:
    prefix = f"{self.path}: " if self.path else ""
    return f"{prefix}rejected: {self.detail}"
