"""One LightningModule per family, plus what their cards share."""

from __future__ import annotations


def mean_std(groups: dict) -> dict:
    """``key -> (mean, std, n)`` of each list of values (std 0 for a single value), for reproduction tables."""
    import torch

    out = {}
    for key, values in groups.items():
        t = torch.tensor(values, dtype=torch.float64)
        out[key] = (float(t.mean()), float(t.std()) if len(values) > 1 else 0.0, len(values))
    return out
