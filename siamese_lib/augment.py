"""Training-time augmentations (config.AUGMENTATIONS), each drawing from torch's global generator: re-pairing
the training digits, swapping a pair's images, and moving each image (shift, affine, elastic)."""

import math

import torch
import torch.nn.functional as F

from .config import RunConfig


def augment_batch(config: RunConfig, x, target, classes, pool=None):
    """A mini-batch augmented as ``config.augment`` says (AUGMENTATIONS); ``pool``: the trained-on pairs (a
    training.Split), the only ones re-pairing draws from."""
    if "repair" in config.augment and pool is not None:
        # new pairs from any two of the training digits; the target follows from their classes
        digits, labels = pool.input.reshape(-1, 1, 14, 14), pool.classes.reshape(-1)
        idx = torch.randint(len(labels), (len(target), 2), device=x.device)
        x = torch.cat((digits[idx[:, 0]], digits[idx[:, 1]]), 1)
        classes = labels[idx]
        target = (classes[:, 0] <= classes[:, 1]).long()
    if "swap" in config.augment:
        flip = torch.rand(len(target), device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(1), x)
        classes = torch.where(flip[:, None], classes.flip(1), classes)
        target = (classes[:, 0] <= classes[:, 1]).long()
    for name, move in (("shift", shift_images), ("affine", affine_images), ("elastic", elastic_images)):
        if name in config.augment:  # in this order
            x = move(x)
    return x, target, classes


def affine_images(x, degrees: float = 12.0, scale: float = 0.1, shift: float = 1.5):
    """Each image rotated (up to +-degrees), rescaled (by 1 +- scale) and moved (up to +-shift pixels) at
    random, bilinear, the border replicated (background in MNIST)."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    m = len(flat)
    angle = (torch.rand(m, device=x.device) * 2 - 1) * degrees * torch.pi / 180
    zoom = 1 + (torch.rand(m, device=x.device) * 2 - 1) * scale
    move = (torch.rand(m, 2, device=x.device) * 2 - 1) * shift * 2 / w  # pixels -> [-1, 1] coordinates
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack((torch.stack((cos, -sin, move[:, 0]), 1), torch.stack((sin, cos, move[:, 1]), 1)), 1)
    grid = F.affine_grid(theta, flat.shape, align_corners=False)
    return F.grid_sample(flat, grid, padding_mode="border", align_corners=False).reshape(n, c, h, w)


def elastic_images(x, alpha: float = 8.5, sigma: float = 2.0):
    """Each image warped by its own smooth random field (Simard et al. 2003): uniform noise in [-1, 1] per
    pixel, Gaussian-smoothed (sigma pixels), times alpha; their 34 and 4 at 28x28 are 8.5 and 2 at 14x14
    (half the displacement: the smoothed noise grows as 1/sigma). Bilinear, the border replicated."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)

    def blur(k):  # the Gaussian filter along one axis as a matrix, zero beyond the edge
        d = torch.arange(k, device=x.device, dtype=x.dtype)
        return torch.exp(-((d - d[:, None]) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)

    noise = torch.rand(len(flat), 2, h, w, device=x.device) * 2 - 1
    smooth = blur(h) @ noise @ blur(w).T
    per_unit = torch.tensor([w / 2, h / 2], device=x.device)  # pixels per unit of the [-1, 1] grid
    move = smooth.permute(0, 2, 3, 1) * alpha / per_unit
    identity = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(len(flat), 2, 3)
    grid = F.affine_grid(identity, flat.shape, align_corners=False) + move
    return F.grid_sample(flat, grid, padding_mode="border", align_corners=False).reshape(n, c, h, w)


def shift_images(x, max_shift: int = 1):
    """Each image moved independently by up to max_shift pixels in x and y, the edge replicated."""
    n, c, h, w = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m), mode="replicate")
    oy = torch.randint(0, 2 * m + 1, (n, c, 1, 1), device=x.device)
    ox = torch.randint(0, 2 * m + 1, (n, c, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1) + oy
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w) + ox
    index = (rows * (w + 2 * m) + cols).reshape(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).reshape(n, c, h, w)
