"""Spreading a sweep's lanes over every device, on one host or many.

The lane axis (hyperparameter points x seeds) is placed on a one-axis
`jax.sharding.Mesh` with `NamedSharding`, so each device runs its share of the
lanes of the one compiled program. The lane count is padded to a multiple of the
device count by repeating the last lane; the padding is dropped from the results.

Multi-host: when the environment says there are several processes (a SLURM or
Open MPI launch, which JAX detects by itself, or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES and JAX_PROCESS_ID set by hand), `jax.distributed.initialize`
joins them; the mesh then spans every host's devices, each host computes its lanes, and
`gather` collects the full lane axis on every process. Only process 0 writes files.
"""

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LANES = "lanes"

# Variables that launchers set to the number of processes in the job.
_PROCESS_COUNT_VARIABLES = ("JAX_NUM_PROCESSES", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def launched_with_several_processes() -> bool:
    return any(int(os.environ.get(name, "1")) > 1 for name in _PROCESS_COUNT_VARIABLES)


def initialize() -> None:
    """Joins the multi-process job when there is one; a no-op on a single process."""
    if not launched_with_several_processes() or jax.distributed.is_initialized():
        return
    if "JAX_NUM_PROCESSES" in os.environ:  # a hand-made launch: JAX reads the address itself
        jax.distributed.initialize(
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    else:  # SLURM or Open MPI: JAX detects the cluster
        jax.distributed.initialize()


def is_writer() -> bool:
    """True on the one process that writes results (process 0)."""
    return jax.process_index() == 0


def lane_mesh(devices: int | None = None) -> Mesh:
    """A one-axis mesh over the first `devices` devices (all of them by default)."""
    available = jax.devices()
    count = len(available) if devices is None else devices
    if not 1 <= count <= len(available):
        raise ValueError(f"devices must be between 1 and {len(available)}, got {devices}")
    return Mesh(np.array(available[:count]), (LANES,))


def shard_lanes(tree, mesh: Mesh):
    """Pads each leaf's leading (lane) axis to a multiple of the mesh size and shards it.

    Returns the sharded tree and the original lane count.
    """
    lanes = len(jax.tree.leaves(tree)[0])
    padded = -(-lanes // mesh.size) * mesh.size
    sharding = NamedSharding(mesh, PartitionSpec(LANES))

    def place(x):
        x = np.asarray(x)
        x = np.concatenate([x, np.repeat(x[-1:], padded - lanes, axis=0)])
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(place, tree), lanes


def replicate(tree, mesh: Mesh):
    """Every leaf placed whole on every device of the mesh (the data a sweep's lanes share)."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(place, tree)


def gather(tree, lanes: int):
    """The full lane axis of each (sharded) leaf as a NumPy array, padding dropped."""
    if jax.process_count() > 1:
        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(lambda x: np.asarray(x)[:lanes], tree)
