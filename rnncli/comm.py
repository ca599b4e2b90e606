"""Communicators: how the workers of one training run share gradients, state and decisions.

Data-parallel training runs K copies of the same model, each on its own share
of the batch's streams.  Everything the workers must agree on passes through a
communicator, so the training loop is one piece of code for one process and for
K: ``SingleProcess`` is the identity (every reduction returns its input, no
copy), ``MpiCommunicator`` does the same with MPI collectives (mpi4py).

``communicator()`` picks one.  Whether this process was started by an MPI
launcher is read from the launcher's environment (Open MPI, MPICH/Hydra, Intel
MPI, PMIx, Slurm), so that a plain ``rnn train`` never imports mpi4py.

A step's gradient reduction (``begin_gradients``) takes the gradients as the
backward pass finishes each part of the model: the output layer first, then the
recurrent layers from the top, then the embedding.  Dense gradients are reduced
in place, each with an allreduce started as soon as its part is handed over
(blocking by default; ``RNN_MPI_OVERLAP=1`` makes them non-blocking, so that they
can run on while the rest of the backward pass computes, as DDP does: on a host
with no core to spare it measured slower).  The embedding's gradient is sparse
(the rows of the window's words): its (rows, ids) are allgathered instead of
reducing the whole (V, E) matrix, unless the gathered rows would weigh more.
``docs/scaling.md`` has the measurements.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import errors
from .errors import RnnError, UsageError
from .optim import RowGrad

# variables an MPI launcher sets in every process it starts: world size where the launcher gives it,
# else only a rank (then mpi4py tells the size)
_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")
_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MPI_LOCALRANKID")


def launched_by_mpi(environ=os.environ) -> bool:
    """True when an MPI launcher started this process with more than one worker (or an unknown count)."""
    for key in _SIZE_VARS:
        if key in environ:
            try:
                return int(environ[key]) > 1
            except ValueError:
                return True
    return any(key in environ for key in _RANK_VARS)


def communicator():
    """The communicator for this process: MPI when launched by mpirun/mpiexec with K > 1, else the identity."""
    if not launched_by_mpi():
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise UsageError(
            f"started by an MPI launcher, but mpi4py cannot be imported ({e}); "
            'install it with pip install -e ".[mpi]", or run rnn train without mpirun'
        ) from None
    if MPI.COMM_WORLD.Get_size() == 1:
        return SingleProcess()
    return MpiCommunicator(MPI)


def cores_per_worker(workers_on_host: int) -> int:
    """This worker's share of the host's cores: those it may run on (a launcher's binding
    narrows them), at most the host's cores divided among the workers on it."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, (os.cpu_count() or 1) // max(workers_on_host, 1)))


def limit_threads(requested: int, comm):
    """Set the BLAS and softmax thread count of this process; returns the threadpoolctl limiter (or None).

    ``requested`` (train.threads) wins; 0 leaves one process as it is and gives each MPI worker
    its share of the host's cores, so that K workers on one host do not oversubscribe it.
    """
    if requested == 0 and comm.size == 1:
        return None
    from threadpoolctl import threadpool_limits

    from .functional import set_threads

    n = requested or cores_per_worker(comm.local_size)
    set_threads(n)
    return threadpool_limits(limits=n)


class WorkerDisagreement(RnnError):
    """The workers' weights or decisions differ: a bug or a broken node, never a user mistake."""


class _Timer:
    """Seconds spent in communication (including waiting for slower workers), for the benchmarks."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self.t0
        self.calls += 1
        return False


def _shares(n: int, k: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal shares of n items among k workers: [(lo, hi)] per worker."""
    return [(r * n // k, (r + 1) * n // k) for r in range(k)]


def checksum(params: dict[str, np.ndarray]) -> int:
    """CRC-32 of every parameter's bytes in name order: equal only for bitwise-equal weights."""
    crc = 0
    for name in sorted(params):
        crc = zlib.crc32(np.ascontiguousarray(params[name]).view(np.uint8), crc)
    return crc


class SingleProcess:
    """One worker: every collective is the identity."""

    rank = 0
    size = 1
    is_root = True
    local_size = 1

    def __init__(self):
        self.timer = _Timer()

    def share(self, n: int) -> tuple[int, int]:
        return 0, n

    def root_does(self, fn: Callable):
        return fn()

    def broadcast(self, obj):
        return obj

    def broadcast_arrays(self, arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        return arrays

    def sum_scalars(self, values: list[float]) -> list[float]:
        return list(values)

    def gather_rows(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return arrays

    def begin_gradients(self) -> _Identity:
        return _Identity()

    def check_same(self, params: dict[str, np.ndarray], where: str) -> None:
        pass

    def detached(self, fn: Callable):
        return fn()


class _Identity:
    scale = 1.0

    def add(self, grads: dict) -> None:
        pass

    def finish(self, grads: dict) -> dict:
        return grads


class MpiCommunicator:
    """K workers over MPI (mpi4py), rank 0 the one that reads the corpus and writes the run folder."""

    def __init__(self, MPI, comm=None):
        self.MPI = MPI
        self.comm = comm or MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.is_root = self.rank == 0
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()  # workers on this host
        self.timer = _Timer()
        # blocking reductions by default: measured faster here (docs/scaling.md); RNN_MPI_OVERLAP=1
        # starts each one non-blocking as soon as its layer's backward is done, as DDP does
        self.overlap = os.environ.get("RNN_MPI_OVERLAP", "0") == "1"

    def share(self, n: int) -> tuple[int, int]:
        """This worker's contiguous share [lo, hi) of n streams."""
        return _shares(n, self.size)[self.rank]

    def root_does(self, fn: Callable):
        """Run fn on rank 0 and hand its result, or the RnnError it raised, to every worker.

        Every worker then raises the same error (the CLI prints it on rank 0 only) and exits
        with the same code, instead of waiting for a rank 0 that left.
        """
        if self.is_root:
            try:
                result = fn()
            except RnnError as e:
                self.broadcast(["error", type(e).__name__, str(e), e.exit_code])
                raise
            self.broadcast(["ok"])
            return result
        answer = self.broadcast(None)
        if answer[0] == "error":
            _, name, message, code = answer
            cls = getattr(errors, name, RnnError)
            try:
                err = cls(message, code)
            except TypeError:  # an error type with another constructor: the message and code are what count
                err = RnnError(message, code)
            raise err
        return None

    def broadcast(self, obj):
        """Rank 0's JSON-able value on every worker (sent as JSON text: no pickle between workers)."""
        with self.timer:
            data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if self.is_root else None
            size = np.array([0 if data is None else data.size], dtype=np.int64)
            self.comm.Bcast(size, root=0)
            if data is None:
                data = np.empty(int(size[0]), dtype=np.uint8)
            self.comm.Bcast(data, root=0)
            return json.loads(data.tobytes().decode()) if not self.is_root else obj

    def broadcast_arrays(self, arrays: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
        """Rank 0's arrays on every worker, each sent as a buffer (no pickled copy of large data)."""
        layout = self.broadcast(None if not self.is_root else {k: (a.shape, a.dtype.str) for k, a in arrays.items()})
        out = {}
        for name, (shape, dtype) in layout.items():
            buf = np.ascontiguousarray(arrays[name]) if self.is_root else np.empty(shape, dtype=np.dtype(dtype))
            self.comm.Bcast(buf, root=0)
            out[name] = buf
        return out

    def sum_scalars(self, values: list[float]) -> list[float]:
        buf = np.asarray(values, dtype=np.float64)
        with self.timer:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return buf.tolist()

    def gather_rows(self, arrays: list[np.ndarray]) -> list[np.ndarray] | None:
        """Each (b, ...) array's rows from every worker, stacked in rank order, on rank 0 (None elsewhere).

        Every worker holds an equal share (the batch is a multiple of the worker count).
        """
        out = []
        for a in arrays:
            a = np.ascontiguousarray(a)
            full = np.empty((self.size * a.shape[0], *a.shape[1:]), dtype=a.dtype) if self.is_root else None
            self.comm.Gather(a, full, root=0)
            out.append(full)
        return out if self.is_root else None

    def begin_gradients(self) -> _MpiGradients:
        return _MpiGradients(self)

    def check_same(self, params: dict[str, np.ndarray], where: str) -> None:
        """Raise WorkerDisagreement (on every worker) unless all workers hold bitwise-equal weights."""
        sums = np.zeros(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([checksum(params)], dtype=np.int64), sums)
        sums = sums.tolist()
        if len(set(sums)) > 1:
            odd = [r for r, s in enumerate(sums) if s != sums[0]]
            raise WorkerDisagreement(
                f"the workers' weights differ {where} (ranks {odd} disagree with rank 0); "
                "this is a bug or a faulty node: resume from the last checkpoint"
            )

    def detached(self, fn: Callable):
        """Run fn (a save on a signal) so that it survives the launcher's kill of this job.

        mpirun answers SIGINT/SIGTERM by forwarding it to every worker and killing them all a
        fraction of a second later, too soon to finish a checkpoint.  Rank 0 forks a writer in a
        session of its own (out of the launcher's reach), waits for it and reports its result;
        if the launcher kills rank 0 meanwhile, the writer still completes the atomic save.
        """
        if not self.is_root or not hasattr(os, "fork"):
            return fn()
        import signal

        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: no MPI, no atexit handlers, one result down the pipe
            os.close(read_end)
            try:
                os.setsid()
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_IGN)
                try:
                    result = ["ok", str(fn())]
                except RnnError as e:
                    result = ["error", str(e), e.exit_code]
                try:
                    os.write(write_end, json.dumps(result).encode())
                except OSError:
                    pass
            finally:
                os._exit(0)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        if not chunks:
            raise RnnError("the checkpoint writer died before it finished; the previous checkpoint is intact")
        result = json.loads(b"".join(chunks).decode())
        if result[0] == "error":
            raise RnnError(result[1], result[2])
        return Path(result[1])


class _MpiGradients:
    """One step's gradient reduction: each part started as soon as the backward pass hands it over.

    Dense gradients are reduced in place, each array its own (non-blocking) allreduce: packing
    them into one buffer would cost a copy of every gradient for a saving of a few microseconds
    of latency per array on the sizes of these models (docs/scaling.md).
    """

    def __init__(self, comm: MpiCommunicator):
        self.c = comm
        self.scale = 1.0 / comm.size
        self.requests: list = []
        self.dense: dict[str, np.ndarray] = {}
        self.sparse: dict[str, RowGrad] = {}

    def add(self, grads: dict) -> None:
        MPI = self.c.MPI
        with self.c.timer:
            for name, g in grads.items():
                if isinstance(g, RowGrad):
                    self.sparse[name] = g
                    continue
                g = np.ascontiguousarray(g)
                self.dense[name] = g
                if self.c.overlap:
                    self.requests.append(self.c.comm.Iallreduce(MPI.IN_PLACE, g, op=MPI.SUM))
                else:
                    self.c.comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            if self.requests:  # let the earlier reductions progress while the backward pass goes on
                MPI.Request.Testall(self.requests)

    def finish(self, grads: dict) -> dict:
        """The workers' gradients summed; ``scale`` (1/K) turns the sum into the gradient of the mean
        loss over the global batch, applied by the clipping's pass (optim.clip_grad_norm_)."""
        rest = {k: g for k, g in grads.items() if k not in self.dense and k not in self.sparse}
        if rest:
            self.add(rest)
        with self.c.timer:
            if self.requests:
                self.c.MPI.Request.Waitall(self.requests)
            out: dict = dict(self.dense)
            for name, g in self.sparse.items():
                out[name] = self._allgather_rows(g)
        return out

    def _allgather_rows(self, g: RowGrad):
        """Sum sparse row gradients of all workers: gather (ids, rows), add the rows of equal ids.

        Every worker adds in the same (rank) order, so every worker gets the same bits.  When
        the gathered rows would weigh more than a ring allreduce of the whole matrix moves
        (2 x its bytes: many workers, a small vocabulary), the matrix is reduced densely instead;
        the row counts every worker gathered first make that choice the same everywhere.
        """
        comm, E = self.c.comm, g.values.shape[1]
        counts = np.zeros(self.c.size, dtype=np.int64)
        comm.Allgather(np.array([len(g.indices)], dtype=np.int64), counts)
        total = int(counts.sum())
        if total * (E * g.values.itemsize + 8) > 2 * g.shape[0] * E * g.values.itemsize:
            dense = g.dense()  # (V, E)
            comm.Allreduce(self.c.MPI.IN_PLACE, dense, op=self.c.MPI.SUM)
            return dense
        ids = np.empty(total, dtype=np.int64)
        rows = np.empty((total, E), dtype=g.values.dtype)
        comm.Allgatherv(np.ascontiguousarray(g.indices, dtype=np.int64), [ids, counts])
        comm.Allgatherv(np.ascontiguousarray(g.values), [rows, counts * E])
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        summed = np.add.reduceat(rows[order], starts, axis=0)  # (distinct, E)
        return RowGrad(sorted_ids[starts], summed, g.shape)
