"""Fidelity: pixel agreement between dream and real frames, per future step.

* **PSNR_t** = 10·log10(1 / MSE_t), frames scaled to [0, 1], MSE over all pixels and channels of frame
  t; identical frames give 100 dB (MSE clamped at 1e-10, far above any 8-bit difference: 89 dB). A
  suite's PSNR_t pools the MSE of frame t over all its rollouts before the log (so a few identical
  frames, e.g. once every ball is lost in both, cannot lift the mean towards 100 dB).
* **SSIM_t**: ``skimage.metrics.structural_similarity`` with a Gaussian window σ = 1.5, K1 = 0.01,
  K2 = 0.03, population covariance, data_range 1, channels last (Wang et al.'s settings).
* **Background instability**: mean |ô_t − ô_{t−1}| (in [0, 1]) over t ≥ 1 on pixels that show the
  background colour in every real frame of the window and are not object-coloured in either dream
  frame: 0 for a clean renderer, larger when the background "boils".
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

MAX_PSNR = 100.0


def mse(real: np.ndarray, dream: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 pairs → (T,) mean squared error of frames scaled to [0, 1]."""
    diff = real.astype(np.float64) / 255.0 - dream.astype(np.float64) / 255.0
    return np.mean(diff ** 2, axis=(1, 2, 3))


def psnr_from_mse(m) -> np.ndarray:
    return 10.0 * np.log10(1.0 / np.maximum(np.asarray(m, np.float64), 10 ** (-MAX_PSNR / 10)))


def psnr(real: np.ndarray, dream: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 pairs → (T,) dB."""
    return psnr_from_mse(mse(real, dream))


def ssim(real: np.ndarray, dream: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 pairs → (T,) SSIM."""
    return np.array([structural_similarity(a.astype(np.float64) / 255, b.astype(np.float64) / 255,
                                           gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           channel_axis=-1, data_range=1.0, K1=0.01, K2=0.03)
                     for a, b in zip(real, dream)])


def background_instability(real: np.ndarray, dream: np.ndarray, background: np.ndarray,
                           dream_labels: np.ndarray) -> float:
    """real, dream (n, H, W, 3) uint8 windows; dream_labels (n, H, W) parser colour indices, where
    0, 1, 2 are background, static and zone and ≥ 3 object colours (see ``evaluate.parser``)."""
    stable = np.all(real == background, axis=-1).all(axis=0)  # (H, W)
    obj = dream_labels >= 3
    keep = stable[None] & ~obj[1:] & ~obj[:-1]  # (n-1, H, W)
    if not keep.any():
        return float("nan")
    d = np.abs(dream[1:].astype(np.float64) - dream[:-1].astype(np.float64)).mean(-1) / 255.0
    return float(d[keep].mean())
