"""Unpadding: where the real tokens of a batch are, and moving them between layouts.

Token-wise work (embeddings, projections, FFN, LayerNorm, dropout) runs on the T real tokens
packed as (T, H). Attention needs the sequences padded again; it runs per *length group*: the rows
of the batch, sorted by length, are cut into at most LENGTH_BANDS groups (see `length_bands`), each
padded only to its own longest. LENGTH_BANDS = 1 is the plain layout (the batch padded to its
longest, as MosaicBERT does); 3 bands cut the padded attention work by about a fifth on the
built-in corpus, a small gain in fp32 and none measurable in bf16 (docs/performance.md), so the
bands are fenced in `length_bands` and the rest of the module works for any number of groups.

Packed token order: the batch's rows sorted by length (longest first, stable), each row's tokens in
position order, so every group's tokens are one contiguous slice. Losses are sums and means over
tokens and rows, which do not depend on that order; per-row outputs are read back in batch order.
Moves between layouts are index_select/index_copy_ of (head_dim)-wide rows, one pass each, with
their own backward: no transposed copies and no scatter-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LENGTH_BANDS = 3  # attention groups at most; more bands, less padding, more (smaller) matmuls


def length_bands(spans: list[int], bands: int = LENGTH_BANDS) -> list[int]:
    """The attention group of each row, given the rows' lengths sorted longest first: a row goes to
    band b when its length is below (1 - b/bands) of the longest, so the cuts fall at 2/3 and 1/3
    of the longest for 3 bands. Returns non-decreasing band numbers in [0, bands)."""
    return [min((spans[0] - s) * bands // spans[0], bands - 1) for s in spans]


@dataclass
class Group:
    """Sequences that attention processes together, padded to the longest of them: packed tokens
    [t0, t1) into a (B, heads, L, d) layout."""

    t0: int
    t1: int
    B: int
    L: int
    head_rows: torch.Tensor  # ((t1-t0)*heads,) row of (token, head) in the (B*heads*L, d) layout
    head_pad_rows: torch.Tensor  # the layout's other rows (padding: zeros)
    key_bias: torch.Tensor  # (B, 1, 1, L) additive attention bias: 0 to attend, dtype min else
    key_mask: torch.Tensor  # (B, 1, 1, L) bool, True to attend (for SDPA)


@dataclass
class Packing:
    B: int
    L: int
    heads: int
    idx: torch.Tensor | None  # (T,) flat index into B*L of each packed token; None: all B*L in order
    pad_idx: torch.Tensor  # the flat indices of the other positions
    cls_rows: torch.Tensor  # (B,) packed row of each sequence's first token ([CLS]), in batch order
    groups: list[Group]

    def unpad(self, x):  # (B, L, ...) -> (T, ...)
        x = x.reshape(self.B * self.L, *x.shape[2:])
        return x if self.idx is None else _Gather.apply(x, self.idx, self.pad_idx)

    def pad(self, x):  # (T, ...) -> (B, L, ...), zeros at padding
        x = x if self.idx is None else _Scatter.apply(x, self.idx, self.pad_idx, self.B * self.L)
        return x.view(self.B, self.L, *x.shape[1:])

    def to_heads(self, x):  # (T, H) -> per group (B_g, heads, L_g, d), zeros at padding
        return _ToGroups.apply(x.reshape(-1, x.shape[1] // self.heads), self)

    def from_heads(self, ys):  # per group (B_g, heads, L_g, d) -> (T, H)
        y = _FromGroups.apply(self, *ys)
        return y.view(-1, self.heads * y.shape[1])


def packing(attention_mask: torch.Tensor, heads: int, dtype: torch.dtype, unpad: bool) -> Packing:
    """The layouts of a (B, L) batch. Without `unpad` (or with nothing to remove, or a sequence whose
    position 0 is padding: the pooler reads it) the batch stays as it is, one group."""
    B, L = attention_mask.shape
    keep = attention_mask.bool()
    dev = keep.device
    unpad = unpad and bool(keep[:, 0].all()) and not bool(keep.all())
    if not unpad:
        span = torch.full((B,), L, device=dev)
        order, idx, pad_idx = torch.arange(B, device=dev), None, torch.zeros(0, dtype=torch.long, device=dev)
        starts = torch.arange(B, device=dev) * L
        kept, keys = torch.ones_like(keep), keep  # every position is a packed token; padding keys masked
    else:
        span = (keep * torch.arange(1, L + 1, device=dev)).amax(1)  # last real position + 1
        order = torch.argsort(span, descending=True, stable=True)
        kept = keys = keep[order]  # rows in packed order
        flat = kept.flatten().nonzero().squeeze(1)
        idx = order[flat // L] * L + flat % L
        pad_idx = (~keep.flatten()).nonzero().squeeze(1)
        counts = kept.sum(1)
        starts = torch.cumsum(counts, 0) - counts  # first packed row of each sorted row
    cls_rows = torch.empty_like(starts).index_copy_(0, order, starts)  # back to batch order
    span_sorted = span[order].tolist()
    band = length_bands(span_sorted)
    groups, r0, t0 = [], 0, 0
    for b in range(LENGTH_BANDS):
        r1 = r0 + band.count(b)
        if r1 > r0:
            cut = (slice(r0, r1), slice(0, span_sorted[r0]))
            groups.append(_group(kept[cut], keys[cut], t0, heads, dtype))
            t0, r0 = groups[-1].t1, r1
    return Packing(B, L, heads, idx, pad_idx, cls_rows, groups)


def _group(kept: torch.Tensor, keys: torch.Tensor, t0: int, heads: int, dtype: torch.dtype) -> Group:
    """kept: which (row, position) of the group's layout hold packed tokens; keys: which may be attended."""
    B, L = kept.shape
    j = torch.arange(heads, device=kept.device)

    def rows(i: torch.Tensor) -> torch.Tensor:  # (b, l), head -> (b*heads + head)*L + l
        return ((i // L * heads)[:, None] + j) * L + (i % L)[:, None]

    real, pad = kept.flatten().nonzero().squeeze(1), (~kept.flatten()).nonzero().squeeze(1)
    bias = torch.zeros((B, 1, 1, L), dtype=dtype, device=kept.device)
    bias.masked_fill_(~keys[:, None, None, :], torch.finfo(dtype).min)
    return Group(t0, t0 + len(real), B, L, rows(real).flatten(), rows(pad).flatten(), bias, keys[:, None, None, :])


class _Scatter(torch.autograd.Function):
    """Rows of x into rows `rows` of a new (total, ...) tensor, zeros in `zero_rows` (together they
    are all of its rows); backward gathers."""

    @staticmethod
    def forward(ctx, x, rows, zero_rows, total):
        ctx.save_for_backward(rows)
        return x.new_empty((total, *x.shape[1:])).index_fill_(0, zero_rows, 0).index_copy_(0, rows, x)

    @staticmethod
    def backward(ctx, g):
        (rows,) = ctx.saved_tensors
        return g.index_select(0, rows), None, None, None


class _Gather(torch.autograd.Function):
    """x[rows]; backward is `_Scatter` (zero gradient for the other rows)."""

    @staticmethod
    def forward(ctx, x, rows, zero_rows):
        ctx.save_for_backward(rows, zero_rows)
        ctx.total = x.shape[0]
        return x.index_select(0, rows)

    @staticmethod
    def backward(ctx, g):
        rows, zero_rows = ctx.saved_tensors
        return g.new_empty((ctx.total, *g.shape[1:])).index_fill_(0, zero_rows, 0).index_copy_(0, rows, g), None, None


def _to_group(x: torch.Tensor, g: Group, heads: int) -> torch.Tensor:  # x: the group's (tokens*heads, d) rows
    out = x.new_empty((g.B * heads * g.L, x.shape[1])).index_fill_(0, g.head_pad_rows, 0).index_copy_(0, g.head_rows, x)
    return out.view(g.B, heads, g.L, x.shape[1])


def _from_groups(ys, pk: Packing) -> torch.Tensor:
    d = ys[0].shape[-1]
    out = ys[0].new_empty((pk.groups[-1].t1 * pk.heads, d))
    for g, y in zip(pk.groups, ys):  # index_select writes each group's rows in place
        torch.index_select(y.reshape(-1, d), 0, g.head_rows, out=out[g.t0 * pk.heads : g.t1 * pk.heads])
    return out


class _ToGroups(torch.autograd.Function):
    """(T*heads, d) packed rows -> one (B_g, heads, L_g, d) tensor per group; backward: `_from_groups`."""

    @staticmethod
    def forward(ctx, x, pk):
        ctx.pk = pk
        return tuple(_to_group(x[g.t0 * pk.heads : g.t1 * pk.heads], g, pk.heads) for g in pk.groups)

    @staticmethod
    def backward(ctx, *grads):
        return _from_groups(grads, ctx.pk), None


class _FromGroups(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pk, *ys):
        ctx.pk = pk
        return _from_groups(ys, pk)

    @staticmethod
    def backward(ctx, g):
        pk = ctx.pk
        return (None, *(_to_group(g[gr.t0 * pk.heads : gr.t1 * pk.heads], gr, pk.heads) for gr in pk.groups))
