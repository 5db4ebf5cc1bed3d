"""Sparsity patterns on the GEMM view of a layer, importance scores, global thresholds, ``prune_`` and
``sparsity_report``.

GEMM view: y[M×N] = x[M×K]·W[K×N]. Every supported layer is handled through its weight in the torch layout
``(N, K)``: ``nn.Linear.weight`` as is, a conv weight ``(cout, cin, kh, kw)`` reshaped to ``(cout, cin·kh·kw)`` (the
im2col order of ``F.unfold``), transformers' ``Conv1D.weight`` ``(K, N)`` transposed. Masks are bool tensors of that
``(N, K)`` shape.

Patterns (Guo et al., arXiv 2008.13006 and 2402.10876):

* ``ew``: element-wise, one global score threshold over all layers.
* ``nm``: N of every M consecutive weights along K kept per output (2:4 and general N:M).
* ``bw``: square blocks of the (N, K) view scored by their L2 norm / element count, one global threshold.
* ``tw``: tile-wise. Step 1 scores each output column n by ‖S[n, :]‖₂ / K and drops whole columns with one global
  threshold; the kept columns, in order, are cut into tiles of ``tile`` (G) columns; step 2 scores each K-row segment
  of a tile by ‖S[tile, k]‖₂ / width and drops segments with one global threshold. The target density d is split as
  d = d_col·d_row with d_col = d^col_share (col_share = ½: the VGG script's (1 − s')² = 1 − s).
* ``tew``: the TW mask at density d − g, then the globally top-g individual pruned weights restored.
* ``tvw``: TW at density d·M/N whose tiles keep a multiple of M rows, then N:M (2:4) along the *compacted* K order
  inside every tile (what sparse tensor cores consume): density = d_TW·N/M.

Thresholds are global across layers: a budget of kept weights is filled by descending score, each unit (weight,
block, column, segment) counting its number of weights, so the achieved density matches the target within one unit.
A per-layer minimum density guard keeps the top ``min_density`` of every layer's units (weights for EW, blocks for BW,
columns and every tile's rows for TW/TEW/TVW), so that no layer is pruned away entirely: with magnitude scores,
layers of small weights (e.g. a transformer's value and attention-output projections) would otherwise lose all.
Scores: ``magnitude`` (|W|) or ``taylor`` (Σ_steps (∂L/∂W ⊙ W)², accumulated by ``TaylorScore``).

A pruned module carries ``tvw_mask`` (a non-persistent bool buffer in the module's weight shape), ``tvw_pattern``
and, for ``tw``/``tvw``, ``tvw_layout`` (``TileLayout.to_dict()``), which ``zoo.pruning.tvw.to_tvw`` executes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = [
    "PATTERNS",
    "gemm_weight",
    "supported",
    "find_targets",
    "magnitude_scores",
    "TaylorScore",
    "compute_masks",
    "apply_masks",
    "prune_",
    "make_permanent",
    "sparsity_report",
    "SparsityReport",
]

PATTERNS = ("ew", "nm", "bw", "tw", "tew", "tvw")


# -- the GEMM view ----------------------------------------------------------------------------------------------------
def _is_hf_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def supported(module: nn.Module) -> bool:
    """Whether ``module`` is a layer the patterns apply to (Linear, Conv1d/2d, transformers Conv1D)."""
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) or _is_hf_conv1d(module)


def gemm_weight(module: nn.Module) -> Tensor:
    """The weight of a supported layer as the ``(N, K)`` GEMM view (a view of the parameter, no copy)."""
    w = module.weight
    if _is_hf_conv1d(module):
        return w.t()
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return w.reshape(w.shape[0], -1)
    if isinstance(module, nn.Linear):
        return w
    raise TypeError(f"expected nn.Linear, nn.Conv1d/2d or transformers Conv1D, got {type(module).__name__}")


def _to_weight_shape(mask_nk: Tensor, module: nn.Module) -> Tensor:
    if _is_hf_conv1d(module):
        return mask_nk.t().contiguous()
    return mask_nk.reshape(module.weight.shape)


def _head_name(model: nn.Module) -> str | None:
    names = [n for n, m in model.named_modules() if supported(m)]
    return names[-1] if names else None


def find_targets(
    model: nn.Module,
    targets: list[str] | str | None = None,
    ignore: list[str] | str | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> dict[str, nn.Module]:
    """The layers to prune, by qualified name.

    Default: every supported layer except the output head (the last supported layer in module order). ``targets``
    and ``ignore`` are regular expressions matched (``re.search``) against qualified names; ``filter_fn(module,
    name)`` decides alone when given. Raises ``ValueError`` when nothing matches, naming the candidates.
    """
    targets = [targets] if isinstance(targets, str) else targets
    ignore = [ignore] if isinstance(ignore, str) else ignore
    head = _head_name(model)
    found = {}
    for name, module in model.named_modules():
        if not supported(module):
            continue
        if filter_fn is not None:
            keep = filter_fn(module, name)
        elif targets:
            keep = any(re.search(t, name) for t in targets)
        else:
            keep = name != head
        if keep and ignore and any(re.search(p, name) for p in ignore):
            keep = False
        if keep:
            found[name] = module
    if not found:
        names = [n for n, m in model.named_modules() if supported(m)]
        raise ValueError(
            f"no layer to prune: targets={targets}, ignore={ignore}, filter_fn={filter_fn}; supported layers in this "
            f"model: {names[:20]}{' ...' if len(names) > 20 else ''} (the output head {head!r} is skipped by default; "
            "name it in `targets` to prune it)"
        )
    return found


# -- scores -----------------------------------------------------------------------------------------------------------
def magnitude_scores(layers: dict[str, nn.Module]) -> dict[str, Tensor]:
    """|W| of each layer, ``(N, K)`` float32."""
    return {n: gemm_weight(m).detach().abs().float() for n, m in layers.items()}


class TaylorScore:
    """First-order Taylor importance Σ_steps (∂L/∂W ⊙ W)² (sum of squares over steps, after Molchanov et al.).

    Call ``accumulate()`` after each backward pass (gradients present); ``scores()`` returns the sums, ``reset()``
    clears them.
    """

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.layers = layers
        self.sums: dict[str, Tensor] = {}
        self.steps = 0

    def accumulate(self) -> None:
        for name, m in self.layers.items():
            if m.weight.grad is None:
                continue
            g = gemm_weight(m).detach().float() * _grad_view(m).float()
            self.sums[name] = self.sums.get(name, 0) + g.square()
        self.steps += 1

    def scores(self) -> dict[str, Tensor]:
        if not self.sums:
            raise RuntimeError("no Taylor scores accumulated yet: call accumulate() after backward passes")
        return dict(self.sums)

    def reset(self) -> None:
        self.sums, self.steps = {}, 0


def _grad_view(module: nn.Module) -> Tensor:
    g = module.weight.grad
    if _is_hf_conv1d(module):
        return g.t()
    return g.reshape(g.shape[0], -1)


# -- global budgets ---------------------------------------------------------------------------------------------------
def _keep_by_budget(scores: Tensor, sizes: Tensor, budget: float, forced: Tensor | None = None) -> Tensor:
    """Keep units in descending score until their sizes fill ``budget`` (ties: lower index first). ``forced`` units
    are kept first and count against the budget. Returns a bool keep vector."""
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    used = 0.0
    if forced is not None and forced.any():
        keep |= forced
        used = float(sizes[forced].sum())
    order = torch.argsort(torch.where(keep, float("-inf"), -scores.double()), stable=True)
    order = order[~keep[order]]
    cum = used + torch.cumsum(sizes[order].double(), 0)
    # the unit that crosses the budget is kept if that lands closer to it
    n = int(torch.searchsorted(cum, torch.tensor([budget], dtype=torch.double)).item())
    if n < len(order) and abs(float(cum[n]) - budget) < abs(budget - (float(cum[n - 1]) if n else used)):
        n += 1
    keep[order[:n]] = True
    return keep


def _guard(score: Tensor, min_density: float) -> Tensor:
    """The per-layer guard: the top ⌈min_density · n⌉ of a layer's units (flat ``score``) are always kept."""
    forced = torch.zeros(score.numel(), dtype=torch.bool)
    forced[torch.argsort(-score.flatten(), stable=True)[: math.ceil(min_density * score.numel())]] = True
    return forced


def _ew(scores: dict[str, Tensor], density: float, min_density: float) -> dict[str, Tensor]:
    flat = torch.cat([s.flatten() for s in scores.values()])
    forced = torch.cat([_guard(s, min_density) for s in scores.values()])
    keep = _keep_by_budget(flat, torch.ones_like(flat), density * flat.numel(), forced)
    out, i = {}, 0
    for name, s in scores.items():
        out[name] = keep[i : i + s.numel()].view(s.shape)
        i += s.numel()
    return out


def _nm_rows(score: Tensor, n: int, m: int) -> Tensor:
    """N:M along the last dim of ``score`` ``(R, K)``: in every group of ``m`` consecutive entries keep the ``n``
    largest (ties: lower index). A ragged last group keeps ⌈n·len/m⌉."""
    r, k = score.shape
    pad = (-k) % m
    s = torch.cat([score, score.new_full((r, pad), float("-inf"))], 1) if pad else score
    groups = s.view(r, -1, m)  # [R, K/m, m]
    # stable descending rank: sort by (-score, index)
    order = torch.argsort(-groups, dim=-1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(m).expand_as(order).contiguous())
    keep = rank < n
    if pad:
        last = k % m
        keep[:, -1] = rank[:, -1] < math.ceil(n * last / m)
    return keep.view(r, -1)[:, :k]


def _nm(scores: dict[str, Tensor], n: int, m: int) -> dict[str, Tensor]:
    return {name: _nm_rows(s, n, m) for name, s in scores.items()}


def _bw(scores: dict[str, Tensor], density: float, block: int, min_density: float) -> dict[str, Tensor]:
    units, sizes, shapes, forced = [], [], {}, []
    for name, s in scores.items():
        nb, kb = math.ceil(s.shape[0] / block), math.ceil(s.shape[1] / block)
        padded = s.new_zeros(nb * block, kb * block)
        padded[: s.shape[0], : s.shape[1]] = s
        sq = padded.square().view(nb, block, kb, block).sum((1, 3))  # [nb, kb] squared block norms
        ones = s.new_zeros(nb * block, kb * block)
        ones[: s.shape[0], : s.shape[1]] = 1
        cnt = ones.view(nb, block, kb, block).sum((1, 3))
        units.append((sq.sqrt() / cnt).flatten())
        sizes.append(cnt.flatten())
        forced.append(_guard(units[-1], min_density))
        shapes[name] = (nb, kb)
    flat, size = torch.cat(units), torch.cat(sizes)
    keep = _keep_by_budget(flat, size, density * float(size.sum()), torch.cat(forced))
    out, i = {}, 0
    for name, s in scores.items():
        nb, kb = shapes[name]
        kb_mask = keep[i : i + nb * kb].view(nb, kb)
        i += nb * kb
        out[name] = kb_mask.repeat_interleave(block, 0).repeat_interleave(block, 1)[: s.shape[0], : s.shape[1]]
    return out


@dataclass
class _Tiles:
    cols: list[Tensor] = field(default_factory=list)
    rows: list[Tensor] = field(default_factory=list)


def _tw(
    scores: dict[str, Tensor],
    density: float,
    tile: int,
    col_share: float,
    min_density: float,
    row_multiple: int = 1,
    score_norm: str = "count",
) -> dict[str, _Tiles]:
    """The TW layout of every layer (kept columns in tiles, kept rows per tile) at overall ``density``."""
    density = min(max(density, 0.0), 1.0)
    d_col = density**col_share
    total = sum(s.numel() for s in scores.values())
    # step 1: columns (output n = rows of the (N, K) score), score ‖S[n, :]‖₂ / K
    col_scores, col_sizes, forced = [], [], []
    for s in scores.values():
        k = s.shape[1]
        norm = s.norm(dim=1) / (k if score_norm == "count" else math.sqrt(k))
        col_scores.append(norm)
        col_sizes.append(torch.full_like(norm, k))
        forced.append(_guard(norm, min_density**col_share))  # with the row guard: layer density >= min_density
    keep_cols = _keep_by_budget(torch.cat(col_scores), torch.cat(col_sizes), d_col * total, torch.cat(forced))
    # step 2: per tile K-row segments, score ‖S[tile, k]‖₂ / width, one budget for the whole model
    layouts, seg_scores, seg_sizes, seg_forced, seg_index = {}, [], [], [], []
    i = 0
    for name, s in scores.items():
        kept = keep_cols[i : i + s.shape[0]].nonzero().view(-1)
        i += s.shape[0]
        tiles = _Tiles(cols=list(kept.split(tile)) if kept.numel() else [])
        layouts[name] = tiles
        for t, cols in enumerate(tiles.cols):
            width = cols.numel()
            seg = s[cols].norm(dim=0) / (width if score_norm == "count" else math.sqrt(width))  # [K]
            seg_scores.append(seg)
            seg_sizes.append(torch.full_like(seg, width))
            seg_forced.append(_guard(seg, min_density ** (1 - col_share)))
            seg_index.append((name, t))
    if not seg_scores:
        return layouts
    sizes = torch.cat(seg_sizes)
    keep_rows = _keep_by_budget(torch.cat(seg_scores), sizes, density * total, torch.cat(seg_forced))
    j = 0
    for seg, (name, _t) in zip(seg_scores, seg_index):
        keep = keep_rows[j : j + seg.numel()].clone()
        j += seg.numel()
        if row_multiple > 1:  # round the tile's kept rows to the nearest multiple (at least one group)
            kept = int(keep.sum())
            k = seg.numel()
            cap = k // row_multiple * row_multiple if k >= row_multiple else k  # K < M: one ragged group
            want = min(cap, max(row_multiple, row_multiple * round(kept / row_multiple)))
            order = torch.argsort(-seg, stable=True)
            keep = torch.zeros_like(keep)
            keep[order[:want]] = True
        layouts[name].rows.append(keep.nonzero().view(-1))
    return layouts


def _tiles_mask(shape: tuple[int, int], tiles: _Tiles) -> Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    for cols, rows in zip(tiles.cols, tiles.rows):
        mask[cols[:, None], rows[None, :]] = True
    return mask


def _layout_dict(shape: tuple[int, int], tiles: _Tiles, tile: int, nm: tuple[int, int] | None) -> dict:
    return {
        "in_features": shape[1],
        "out_features": shape[0],
        "tile": tile,
        "cols": [c.tolist() for c in tiles.cols],
        "rows": [r.tolist() for r in tiles.rows],
        "nm": list(nm) if nm else None,
    }


def compute_masks(
    scores: dict[str, Tensor],
    pattern: str = "tvw",
    sparsity: float | None = 0.75,
    *,
    tile: int = 128,
    n: int = 2,
    m: int = 4,
    block: int = 32,
    restore: float = 0.05,
    col_share: float = 0.5,
    min_density: float = 0.02,
    score_norm: str = "count",
) -> tuple[dict[str, Tensor], dict[str, dict]]:
    """Masks ``(N, K)`` for every layer's scores, and the TW layouts (``TileLayout`` dicts) of ``tw``/``tvw``.

    Args:
        scores: importance ``(N, K)`` per layer name (larger = more important).
        pattern: one of ``PATTERNS``.
        sparsity: overall fraction of pruned weights over all layers (``nm``: None or 1 − n/m).
        tile: TW tile width G (kept columns per tile).
        n, m: the N:M pattern (``nm``, and inside the tiles of ``tvw``).
        block: BW block size.
        restore: TEW, the fraction g of all weights restored element-wise.
        col_share: TW, the share of log-density spent on columns (d_col = d^col_share).
        min_density: per-layer guard: every layer keeps at least this fraction of its weights (EW: its top weights,
            BW: blocks, TW: the top min_density^col_share of its columns and min_density^(1-col_share) of every
            tile's rows).
        score_norm: TW segment normaliser, ``"count"`` (‖·‖₂ / count, the official form) or ``"sqrt"`` (RMS).
    """
    if pattern not in PATTERNS:
        raise ValueError(f"expected pattern in {PATTERNS}, got {pattern!r}")
    if not scores:
        raise ValueError("no layers to prune (empty scores)")
    if not 0 < n <= m:
        raise ValueError(f"expected 0 < n <= m for N:M, got n={n}, m={m}")
    if pattern == "nm":
        if sparsity is not None and abs(sparsity - (1 - n / m)) > 1e-9:
            raise ValueError(f"N:M {n}:{m} fixes the sparsity at {1 - n / m:g}; got sparsity={sparsity}")
        return _nm(scores, n, m), {}
    if sparsity is None or not 0 <= sparsity < 1:
        raise ValueError(f"expected 0 <= sparsity < 1, got {sparsity}")
    density = 1 - sparsity
    if pattern == "ew":
        return _ew(scores, density, min_density), {}
    if pattern == "bw":
        return _bw(scores, density, block, min_density), {}
    if pattern == "tew":
        if not 0 <= restore < density:
            raise ValueError(f"TEW restores a fraction g with 0 <= g < density ({density:g}), got {restore}")
        tiles = _tw(scores, density - restore, tile, col_share, min_density, score_norm=score_norm)
        masks = {name: _tiles_mask(s.shape, tiles[name]) for name, s in scores.items()}
        pruned = {name: torch.where(masks[name], torch.full_like(s, -1.0), s) for name, s in scores.items()}
        total = sum(s.numel() for s in scores.values())
        flat = torch.cat([p.flatten() for p in pruned.values()])
        back = _keep_by_budget(flat, torch.ones_like(flat), restore * total, forced=None)
        back &= flat >= 0
        i = 0
        for name, s in scores.items():
            masks[name] = masks[name] | back[i : i + s.numel()].view(s.shape)
            i += s.numel()
        return masks, {}
    if pattern == "tw":
        tiles = _tw(scores, density, tile, col_share, min_density, score_norm=score_norm)
        masks = {name: _tiles_mask(s.shape, tiles[name]) for name, s in scores.items()}
        return masks, {name: _layout_dict(s.shape, tiles[name], tile, None) for name, s in scores.items()}
    # tvw: TW at density·m/n with row counts in multiples of m, then n:m along the compacted rows of each tile
    if density > n / m + 1e-12:
        raise ValueError(f"TVW with {n}:{m} inside the tiles prunes at least {1 - n / m:g}; got sparsity={sparsity}")
    md = min(1.0, min_density * m / n)  # the guard on the TW part, so that the layer keeps min_density after N:M
    tiles = _tw(scores, density * m / n, tile, col_share, md, row_multiple=m, score_norm=score_norm)
    masks = {}
    for name, s in scores.items():
        mask = torch.zeros(s.shape, dtype=torch.bool)
        for cols, rows in zip(tiles[name].cols, tiles[name].rows):
            sub = s[cols[:, None], rows[None, :]]  # [width, K_t], rows in ascending (compacted) order
            mask[cols[:, None], rows[None, :]] = _nm_rows(sub, n, m)
        masks[name] = mask
    return masks, {name: _layout_dict(s.shape, tiles[name], tile, (n, m)) for name, s in scores.items()}


# -- applying ---------------------------------------------------------------------------------------------------------
def _attach(module: nn.Module, mask_nk: Tensor, pattern: str, layout: dict | None, nm: tuple[int, int]) -> None:
    mask = _to_weight_shape(mask_nk, module).to(module.weight.device)
    if "tvw_mask" in module._buffers:
        module.tvw_mask = mask
    else:
        module.register_buffer("tvw_mask", mask, persistent=False)
    module.tvw_pattern = pattern
    module.tvw_layout = layout
    module.tvw_nm = tuple(nm)


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero the pruned weights of every module that carries a ``tvw_mask`` (after an optimizer step)."""
    for module in model.modules():
        mask = getattr(module, "tvw_mask", None)
        if isinstance(mask, Tensor):
            module.weight.mul_(mask)


def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of pruned weights (before an optimizer step)."""
    for module in model.modules():
        mask = getattr(module, "tvw_mask", None)
        if isinstance(mask, Tensor) and module.weight.grad is not None:
            module.weight.grad.mul_(mask)


def pruned_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules of ``model`` that carry a mask, by qualified name."""
    return {n: m for n, m in model.named_modules() if isinstance(getattr(m, "tvw_mask", None), Tensor)}


@torch.no_grad()
def prune_(
    model: nn.Module,
    pattern: str = "tvw",
    sparsity: float | None = 0.75,
    *,
    score: str | dict[str, Tensor] = "magnitude",
    targets: list[str] | str | None = None,
    ignore: list[str] | str | None = None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    **pattern_kwargs,
) -> SparsityReport:
    """Prune ``model`` in place to ``pattern`` at ``sparsity`` (global over the targeted layers).

    Args:
        model: any ``nn.Module``.
        pattern: ``ew | nm | bw | tw | tew | tvw``.
        sparsity: overall pruned fraction of the targeted weights (``nm``: implied by n:m, pass None).
        score: ``"magnitude"``, or a dict of precomputed ``(N, K)`` scores by layer name (e.g. ``TaylorScore``).
        targets, ignore, filter_fn: layer selection (``find_targets``).
        **pattern_kwargs: ``tile``, ``n``, ``m``, ``block``, ``restore``, ``col_share``, ``min_density``, ``score_norm``
            (see ``compute_masks``).

    Returns:
        The ``sparsity_report`` of the model after pruning.

    Example:
        >>> report = prune_(model, pattern="tvw", sparsity=0.75, tile=128)
        >>> report.density  # 0.25 of the targeted weights are kept
    """
    layers = find_targets(model, targets, ignore, filter_fn)
    if isinstance(score, str):
        if score != "magnitude":
            raise ValueError(
                f"expected score='magnitude' or a dict of scores, got {score!r} (Taylor scores need gradients: use "
                "TaylorScore, or the TVWPruning callback with score='taylor')"
            )
        scores = magnitude_scores(layers)
    else:
        missing = sorted(set(layers) - set(score))
        if missing:
            raise ValueError(f"scores are missing for layers {missing}")
        scores = {n: score[n].float().cpu() for n in layers}
    masks, layouts = compute_masks({n: s.cpu() for n, s in scores.items()}, pattern, sparsity, **pattern_kwargs)
    nm = (pattern_kwargs.get("n", 2), pattern_kwargs.get("m", 4))
    for name, module in layers.items():
        _attach(module, masks[name], pattern, layouts.get(name), nm)
    apply_masks(model)
    return sparsity_report(model)


def make_permanent(model: nn.Module) -> dict[str, dict]:
    """Zero the pruned weights for good and remove the masks; returns the sparsity layout per layer
    (``{"pattern", "density", "layout"}``), the record that goes into a checkpoint's ``config.json``."""
    apply_masks(model)
    record = {}
    for name, module in pruned_layers(model).items():
        record[name] = {
            "pattern": module.tvw_pattern,
            "density": round(float(module.tvw_mask.float().mean()), 6),
            "layout": module.tvw_layout,
        }
        del module._buffers["tvw_mask"]
        del module.tvw_pattern, module.tvw_layout, module.tvw_nm
    return record


# -- report -----------------------------------------------------------------------------------------------------------
@dataclass
class LayerSparsity:
    name: str
    kind: str
    shape: tuple[int, int]
    pattern: str | None
    density: float
    ok: bool
    problem: str = ""


@dataclass
class SparsityReport:
    """Per-layer and global density of the prunable layers, and whether each layer has the pattern it claims."""

    layers: list[LayerSparsity]

    @property
    def density(self) -> float:
        """Kept fraction over the pruned layers (1.0 when none is pruned)."""
        pruned = [lay for lay in self.layers if lay.pattern]
        total = sum(lay.shape[0] * lay.shape[1] for lay in pruned)
        kept = sum(lay.density * lay.shape[0] * lay.shape[1] for lay in pruned)
        return kept / total if total else 1.0

    @property
    def sparsity(self) -> float:
        return 1 - self.density

    @property
    def ok(self) -> bool:
        return all(lay.ok for lay in self.layers)

    def table(self) -> str:
        lines = [f"{'layer':40} {'type':10} {'N x K':>12} {'pattern':8} {'density':>8}  check"]
        for lay in self.layers:
            shape = f"{lay.shape[0]}x{lay.shape[1]}"
            check = "ok" if lay.ok else f"FAIL: {lay.problem}"
            lines.append(f"{lay.name:40} {lay.kind:10} {shape:>12} {lay.pattern or '-':8} {lay.density:8.4f}  {check}")
        lines.append(f"global density of pruned layers: {self.density:.4f} (sparsity {self.sparsity:.4f})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _check(w: Tensor, mask: Tensor, pattern: str, layout: dict | None) -> str:
    """'' if the (N, K) weight and mask have the pattern they claim, else what is wrong."""
    if (w[~mask] != 0).any():
        return f"{int((w[~mask] != 0).sum())} weights outside the mask are non-zero"
    if pattern in ("tw", "tvw"):
        if layout is None:
            return "no TW layout recorded"
        tiles = _Tiles([torch.tensor(c, dtype=torch.long) for c in layout["cols"]],
                       [torch.tensor(r, dtype=torch.long) for r in layout["rows"]])  # fmt: skip
        cover = _tiles_mask(tuple(w.shape), tiles)
        if (mask & ~cover).any():
            return "mask has weights outside the TW tiles"
        used = torch.cat(tiles.cols) if tiles.cols else torch.empty(0, dtype=torch.long)
        if used.unique().numel() != used.numel():
            return "a column belongs to two tiles"
        for t, (cols, rows) in enumerate(zip(tiles.cols, tiles.rows)):
            if cols.numel() > layout["tile"]:
                return f"tile {t} has {cols.numel()} columns > tile width {layout['tile']}"
            sub = mask[cols[:, None], rows[None, :]]
            if pattern == "tw" and not sub.all():
                return f"tile {t}: its columns do not share one K pattern"
            if pattern == "tvw":
                n, m = layout["nm"]
                if rows.numel() % m and not rows.numel() == w.shape[1] < m:
                    return f"tile {t} keeps {rows.numel()} rows, not a multiple of {m}"
                if (sub.view(cols.numel(), -1, m).sum(-1) > n).any():
                    return f"tile {t}: a group of {m} compacted rows has more than {n} non-zeros"
    return ""


def sparsity_report(model: nn.Module) -> SparsityReport:
    """Density of every supported layer, and a structural check of each pruned layer's claimed pattern (``nm``
    against its ``n:m``, ``tw``/``tvw`` against their recorded tiles, every pattern: zeros outside the mask)."""
    layers = []
    for name, module in model.named_modules():
        if not supported(module):
            continue
        w = gemm_weight(module).detach()
        mask = getattr(module, "tvw_mask", None)
        pattern = getattr(module, "tvw_pattern", None) if isinstance(mask, Tensor) else None
        if pattern is None:
            density = float((w != 0).float().mean())
            layers.append(LayerSparsity(name, type(module).__name__, tuple(w.shape), None, density, True))
            continue
        mask_nk = mask.t() if _is_hf_conv1d(module) else mask.reshape(w.shape[0], -1)
        problem = _check(w.cpu(), mask_nk.cpu(), pattern, getattr(module, "tvw_layout", None))
        if not problem and pattern == "nm":
            n, m = module.tvw_nm
            k = mask_nk.shape[1]
            pad = (-k) % m
            groups = torch.cat([mask_nk.cpu(), mask_nk.new_zeros(mask_nk.shape[0], pad).cpu()], 1).view(-1, m)
            if (groups.sum(-1) > n).any():
                problem = f"a group of {m} along K has more than {n} non-zeros"
        density = float(mask_nk.float().mean())
        kind = type(module).__name__
        layers.append(LayerSparsity(name, kind, tuple(w.shape), pattern, density, not problem, problem))
    return SparsityReport(layers)
