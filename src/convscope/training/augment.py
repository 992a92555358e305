"""Light augmentation done on whole batches of tensors: no per-image Python work, on any device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(
    x: torch.Tensor, pixels: int, generator: torch.Generator, draws: int | None = None, share: slice = slice(None)
) -> torch.Tensor:
    """Move every image of an (N, C, H, W) batch by its own random offset of up to `pixels` rows and columns.

    The border is filled by repeating the edge pixels, so light-background images do not get a
    dark frame. The offsets come from `generator` (CPU), which keeps a run reproducible.
    `draws` and `share`: offsets are drawn for a whole global batch of `draws` images and this
    batch takes its `share` of them, so every rank of a distributed run advances the generator
    alike and the images get the offsets they would get in one process.
    """
    if pixels <= 0:
        return x
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * pixels + 1, (2, draws or n, 1), generator=generator)[:, share].to(x.device)
    rows = torch.arange(h, device=x.device) + offsets[0]  # (N, H): row r of image i reads padded row r + offset
    cols = torch.arange(w, device=x.device) + offsets[1]  # (N, W)
    padded = F.pad(x, (pixels, pixels, pixels, pixels), mode="replicate").permute(0, 2, 3, 1)  # N, H+2p, W+2p, C
    batch = torch.arange(n, device=x.device)[:, None, None]
    moved = padded[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C), one gather for the whole batch
    return moved.permute(0, 3, 1, 2)  # back to NCHW shape, still channels-last in memory
