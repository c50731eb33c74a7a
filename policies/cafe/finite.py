"""A dedicated error for NaN/inf values in CAFE's phi, CMI or Hessian-vector products.

Training must stop at the first non-finite value (so the last good checkpoint stays intact), and
the message must say where the value appeared; `check_finite` is the one place that does both.
"""

from __future__ import annotations

import torch


class NonFiniteError(FloatingPointError):
    """A NaN or infinite value appeared in `where` (e.g. "phi", "CMI", "Hessian-vector product")."""

    def __init__(self, where: str, tensor: torch.Tensor | None = None, message: str = ""):
        self.where = where
        if tensor is not None:
            bad = int((~torch.isfinite(tensor)).sum())
            message = (f"non-finite value in {where}: {bad} of {tensor.numel()} entries are NaN or infinite; "
                       "stopping before this update is applied (the last good checkpoint is untouched)")
        super().__init__(message)

    def __reduce__(self):
        """Copyable and picklable (Ray copies and ships errors), keeping where and the message."""
        return type(self), (self.where, None, str(self))


def check_finite(where: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return `tensor` unchanged, or raise NonFiniteError naming `where` if any entry is NaN/inf."""
    if not bool(torch.isfinite(tensor).all()):
        raise NonFiniteError(where, tensor)
    return tensor
