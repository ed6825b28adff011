"""Where the numbers are computed: the torch device and the CPU threads a stage may use."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

__all__ = ["resolve_device", "cpu_threads"]


def resolve_device(device=None):
    """The config's ``device``: ``None``/``"auto"`` -> CUDA when available, else CPU; anything else
    (``"cpu"``, ``"cuda:1"``) as :class:`torch.device` reads it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def cpu_threads(n_threads):
    """Limit torch and BLAS/OpenMP to ``n_threads`` (None: no limit), restoring both on exit.

    Snakemake passes each rule's ``threads`` here (``giblet <command> --threads``), so parallel
    jobs share the cores instead of each taking all of them.
    """
    if not n_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(n_threads):
            yield
    finally:
        torch.set_num_threads(previous)
