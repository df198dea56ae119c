"""Streams one split's serialized records into array_record shards named and described as TFDS does.

The number of shards is only known at the end (records arrive song by song), so shards are
written under temporary names and renamed to TFDS's `<name>-<split>.array_record-0000i-of-0000n`
when the split is finished.
"""

import os

from array_record.python import array_record_module
from tensorflow_datasets.core import naming
from tensorflow_datasets.core import splits as splits_lib

# group_size:1 as TFDS: one record per chunk, for fast random access. Snappy instead of the
# default zstd: with records this small both compress to the same size (28 vs 27 MB for 100k
# 2-bar records), but snappy writes 2.7x and reads 1.2x faster.
_RECORD_OPTIONS = "group_size:1,snappy"


class SplitWriter:
  """Writes the records of one split; `finish()` returns the split's TFDS SplitInfo."""

  def __init__(self, template: naming.ShardedFileTemplate, shard_bytes: int):
    self._template = template
    self._shard_bytes = shard_bytes
    self._writer: array_record_module.ArrayRecordWriter | None = None
    self._temp_paths: list[str] = []
    self._shard_lengths: list[int] = []
    self._bytes_in_shard = 0

  @property
  def num_examples(self) -> int:
    return sum(self._shard_lengths)

  def _start_shard(self) -> None:
    if self._writer is not None:
      self._writer.close()
    path = f"{self._template.filepath_prefix()}.part-{len(self._temp_paths):05d}"
    self._writer = array_record_module.ArrayRecordWriter(path, _RECORD_OPTIONS)
    self._temp_paths.append(path)
    self._shard_lengths.append(0)
    self._bytes_in_shard = 0

  def write(self, records: list[bytes]) -> None:
    for record in records:
      if self._writer is None or self._bytes_in_shard >= self._shard_bytes:
        self._start_shard()
      self._writer.write(record)
      self._shard_lengths[-1] += 1
      self._bytes_in_shard += len(record)

  def finish(self) -> splits_lib.SplitInfo:
    """Closes the last shard, gives the shards their final names and describes the split."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None
    num_shards = len(self._temp_paths)
    num_bytes = 0
    for index, temp_path in enumerate(self._temp_paths):
      final_path = self._template.sharded_filepath(shard_index=index, num_shards=num_shards)
      os.replace(temp_path, final_path)
      num_bytes += os.path.getsize(final_path)
    return splits_lib.SplitInfo(name=self._template.split, shard_lengths=self._shard_lengths,
                                num_bytes=num_bytes, filename_template=self._template)
