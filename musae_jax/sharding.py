"""Device mesh, shardings and the multi-process runtime.

Data parallelism only: the batch is split along the mesh's single `data` axis and the train state
is replicated, so XLA inserts the gradient all-reduce (GSPMD), with no pmap.
"""

import os

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

from musae_common.errors import UserError

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1) -> None:
  """Starts jax.distributed when the job spans several processes; a no-op for one process.

  Explicit arguments win; otherwise SLURM's environment (one task per node or per GPU) is
  detected by JAX itself. On CPU, collectives across processes go through gloo.
  """
  explicit = bool(coordinator_address) and num_processes > 1
  under_slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1
  if not (explicit or under_slurm):
    return
  # Only the CPU backend reads this (cross-process collectives of CPU devices); GPUs use NCCL.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if explicit:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  else:
    jax.distributed.initialize()
  logging.info("Process %d of %d, %d local of %d devices.", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process.

  Auto axes: the model code stays sharding-agnostic and XLA's partitioner propagates the batch
  sharding and inserts the gradient all-reduce (newer JAX defaults to Explicit axes).
  """
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def per_process_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """The rows each process feeds; the global batch must split evenly over devices."""
  num_devices = mesh.devices.size
  if global_batch_size % num_devices:
    raise UserError(
        f"config.batch_size={global_batch_size} does not divide evenly over {num_devices} "
        f"devices; use a multiple of {num_devices}.")
  return global_batch_size // jax.process_count()


def global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's rows into one batch array sharded along `data`."""
  sharding = batch_sharding(mesh)
  # The explicit placement of a batch: allowed under the training loop's transfer guard (over
  # several devices, the guard counts the per-device copies inside as transfers).
  with jax.transfer_guard_host_to_device("allow"):
    return {k: jax.make_array_from_process_local_data(sharding, v)
            for k, v in local_batch.items()}
