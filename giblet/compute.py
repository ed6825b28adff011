"""Where the numbers are computed: the torch device and the CPU threads a stage may use."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

__all__ = ["resolve_device", "cpu_threads"]


def resolve_device(device=None):
    """The config's ``device``: ``None``/``"auto"`` -> CUDA when available, else CPU; anything else
    (``"cpu"``, ``"cuda:1"``) as :class:`torch.device` reads it."""
    import torch  # here, not at the top: stages without torch limit their threads through this module

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def cpu_threads(n_threads):
    """Limit torch and BLAS/OpenMP to ``n_threads`` (None: no limit), restoring both on exit.

    Snakemake passes each rule's ``threads`` here (``giblet <command> --threads``), so parallel
    jobs share the cores instead of each taking all of them. torch is limited whether it is
    imported before the block or inside it (it reads ``OMP_NUM_THREADS`` on import), and a stage
    that never uses it does not pay for importing it (~2 s).
    """
    if not n_threads:
        yield
        return
    saved_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n_threads)
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n_threads)
    try:
        with threadpool_limits(n_threads):
            yield
    finally:
        if saved_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_env
        if torch:
            torch.set_num_threads(previous)
