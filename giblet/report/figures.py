"""Report figures: each function returns a matplotlib Figure; the page code places them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

__all__ = ["encoding_bars", "isc_bars", "spectrograms", "thumbnail_grid", "lesion_heatmap", "brain_map"]


def isc_bars(roi_names, isc, null=None, title="Leave-one-subject-out ISC"):
    """ISC per ROI (bars), with the circular-shift null as dots."""
    fig, ax = plt.subplots(figsize=(6, 3))
    x = np.arange(len(roi_names))
    ax.bar(x, isc, color="tab:blue", label="ISC (noise ceiling)")
    if null is not None:
        ax.plot(x, null, "k_", markersize=16, label="shifted null")
    ax.set_xticks(x, roi_names, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("r")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def encoding_bars(table):
    """Encoding r of the ROI-mean prediction per ROI and model, with the ISC ceiling."""
    rois = list(dict.fromkeys(table["roi"]))
    models = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / (len(models) + 1)
    x = np.arange(len(rois))
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("roi").reindex(rois)
        ax.bar(x + i * width, rows["r"], width, label=model)
    ceiling = table.drop_duplicates("roi").set_index("roi").reindex(rois)["ceiling"]
    ax.bar(x + len(models) * width, ceiling, width, color="lightgrey", label="ISC ceiling")
    ax.set_xticks(x + width * len(models) / 2, rois, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("Pearson r (test block)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def spectrograms(waves, sample_rate_hz):
    """Log spectrograms of named waveforms, one row each, on a shared time axis."""
    fig, axes = plt.subplots(len(waves), 1, figsize=(8, 1.6 * len(waves)), sharex=True, squeeze=False)
    for ax, (name, wave) in zip(axes[:, 0], waves.items()):
        f, t, sxx = signal.spectrogram(wave, fs=sample_rate_hz, nperseg=512, noverlap=384)
        ax.pcolormesh(t, f / 1000, 10 * np.log10(sxx + 1e-10), shading="auto", cmap="magma")
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time in excerpt (s)")
    fig.tight_layout()
    return fig


def thumbnail_grid(rows, labels, titles):
    """Images (each (n, h, w, 3) in [0, 1]) in rows, e.g. true above decoded."""
    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.0 * len(rows)), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c], 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if r == 0:
                ax.set_title(titles[c], fontsize=7)
    fig.tight_layout()
    return fig


def lesion_heatmap(pivot, title):
    """Change of a decoding score when each ROI is silenced (rows) for each modality (columns)."""
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * pivot.shape[1], 0.9 + 0.35 * pivot.shape[0]))
    limit = np.nanmax(np.abs(pivot.to_numpy())) or 1.0
    image = ax.imshow(pivot.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(pivot.shape[1]), pivot.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(pivot.shape[0]), pivot.index, fontsize=8)
    for (i, j), value in np.ndenumerate(pivot.to_numpy(dtype=float)):
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="lesioned - intact")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def brain_map(img, title):
    """Axial slices of a voxel map (nilearn), thresholded at r > 0.1."""
    from nilearn import plotting

    fig = plt.figure(figsize=(8, 2.2))
    plotting.plot_stat_map(img, bg_img=None, display_mode="z", cut_coords=6, threshold=0.1, figure=fig,
                           title=title, colorbar=True, annotate=False, draw_cross=False, black_bg=False)
    return fig
