"""Model size: parameter counts, overall and per part."""

from __future__ import annotations

from collections import Counter

__all__ = ["count_parameters", "parameter_counts"]


def count_parameters(module, trainable_only=False):
    """Number of parameters of ``module`` (shared tensors counted once).

    Parameters
    ----------
    module : torch.nn.Module
        May live on the ``"meta"`` device, to size a model too large to allocate.
    trainable_only : bool, default=False
        Count only parameters with ``requires_grad``.

    Returns
    -------
    int
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def parameter_counts(module, trainable_only=False):
    """Parameters per top-level part (``towers``, ``readouts``, ``heads``...), shared tensors counted once.

    Returns
    -------
    dict of str to int
        Part name -> parameter count, in registration order.
    """
    counts = Counter()
    for name, p in module.named_parameters():
        if p.requires_grad or not trainable_only:
            counts[name.split(".")[0]] += p.numel()
    return dict(counts)
