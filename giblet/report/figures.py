"""Report figures: each function returns a matplotlib Figure; the page code places them."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import signal, stats  # noqa: E402

__all__ = ["encoding_bars", "group_encoding_bars", "isc_bars", "spectrograms", "thumbnail_grid", "lesion_heatmap", "brain_map",
           "voxel_scatter"]


def isc_bars(roi_names, isc, null_band=None, title="Leave-one-subject-out ISC", subjects=None, ci=None):
    """ISC per ROI (bars) with its 95 % interval (``ci``: (2, n_rois), error bars), the circular-shift null's 95 %
    band (grey span) and, for a group, every subject's ISC (``subjects``: (n_subjects, n_rois), dots)."""
    fig, ax = plt.subplots(figsize=(6, 3))
    x = np.arange(len(roi_names))
    ax.bar(x, isc, color="tab:blue", label="ISC (noise ceiling)")
    if ci is not None and np.isfinite(ci).all():
        low, high = np.asarray(ci)
        ax.errorbar(x, isc, yerr=[np.asarray(isc) - low, high - np.asarray(isc)], fmt="none", ecolor="k", capsize=3,
                    label="95 % block bootstrap")
    if subjects is not None:
        for row in subjects:
            ax.plot(x, row, "o", color="k", markersize=2.5, alpha=0.6)
        ax.plot([], [], "o", color="k", markersize=2.5, label="subjects")
    if null_band is not None:
        low, high = null_band
        ax.bar(x, np.asarray(high) - np.asarray(low), 0.9, bottom=low, color="grey", alpha=0.45,
               label="circular-shift null, 95 %")
    ax.set_xticks(x, roi_names, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("r")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _roi_model_axes(table):
    """(fig, ax, rois, models, x, width) of a chart with one bar per model and a ceiling bar in every ROI group."""
    rois = list(dict.fromkeys(table["roi"]))
    models = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    return fig, ax, rois, models, np.arange(len(rois)), 0.8 / (len(models) + 1)


def _finish_roi_chart(fig, ax, rois, x, width, n_models, ceiling, label):
    """Draw the ceiling bars and the axes' labels; return the figure."""
    ax.bar(x + n_models * width, ceiling, width, color="lightgrey", label=label)
    ax.set_xticks(x + width * n_models / 2, rois, rotation=30, ha="right")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel("Pearson r (test block)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def encoding_bars(table):
    """Encoding r of the ROI-mean prediction per ROI and model (with its bootstrap 95 % interval when the table has
    ``r_ci_low``/``r_ci_high``), with the ISC ceiling."""
    fig, ax, rois, models, x, width = _roi_model_axes(table)
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("roi").reindex(rois)
        error = None
        if {"r_ci_low", "r_ci_high"} <= set(rows):
            error = np.clip(np.vstack([rows["r"] - rows["r_ci_low"], rows["r_ci_high"] - rows["r"]]), 0, None)
        ax.bar(x + i * width, rows["r"], width, yerr=error, capsize=2, label=model)
    ceiling = table.drop_duplicates("roi").set_index("roi").reindex(rois)["ceiling"]
    return _finish_roi_chart(fig, ax, rois, x, width, len(models), ceiling, "ISC ceiling")


def group_encoding_bars(table):
    """Group mean encoding r per ROI and model (bars, with the 95 % t interval of the mean over subjects) with
    every subject's r (dots) and the mean ceiling (grey).

    ``table``: long rows ``roi, model, subject, r, ceiling``.
    """
    fig, ax, rois, models, x, width = _roi_model_axes(table)
    for i, model in enumerate(models):
        rows = table[table["model"] == model]
        by_roi = rows.groupby("roi")["r"]
        means, n = by_roi.mean().reindex(rois), by_roi.count().reindex(rois)
        half = (by_roi.sem().reindex(rois) * stats.t.ppf(0.975, np.maximum(n - 1, 1))).where(n > 1)
        ax.bar(x + i * width, means, width, yerr=half.to_numpy(), capsize=2, label=f"{model} (mean, 95 % CI)")
        for j, roi in enumerate(rois):
            values = rows.loc[rows["roi"] == roi, "r"].to_numpy()
            ax.plot(np.full(len(values), x[j] + i * width), values, "o", color="k", markersize=2.5, alpha=0.6)
    ceiling = table.groupby("roi")["ceiling"].mean().reindex(rois)
    ax.plot([], [], "o", color="k", markersize=2.5, label="subjects")
    return _finish_roi_chart(fig, ax, rois, x, width, len(models), ceiling, "ISC ceiling (mean)")


def spectrograms(waves, sample_rate_hz, max_bins=(96, 400)):
    """Log spectrograms of named waveforms, one row each, on a shared time axis, averaged down to at most
    ``max_bins`` (frequency, time) bins (what a page can show; it keeps pages small)."""
    fig, axes = plt.subplots(len(waves), 1, figsize=(8, 1.3 * len(waves)), sharex=True, squeeze=False)
    for ax, (name, wave) in zip(axes[:, 0], waves.items()):
        f, t, sxx = signal.spectrogram(wave, fs=sample_rate_hz, nperseg=512, noverlap=384)
        sxx = _pool(_pool(sxx, max_bins[0], axis=0), max_bins[1], axis=1)
        ax.imshow(10 * np.log10(sxx + 1e-10), origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                  extent=(t[0], t[-1], f[0] / 1000, f[-1] / 1000))
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time in excerpt (s)")
    fig.tight_layout()
    return fig


def _pool(values, n_bins, axis):
    """Mean over runs of consecutive entries along ``axis`` so that at most ``n_bins`` remain."""
    factor = -(-values.shape[axis] // n_bins)
    if factor == 1:
        return values
    size = values.shape[axis] // factor * factor
    kept = np.take(values, np.arange(size), axis=axis)
    shape = list(kept.shape)
    shape[axis : axis + 1] = [size // factor, factor]
    return kept.reshape(shape).mean(axis=axis + 1)


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


def brain_map(img, title, *, bg_img=None, rois=None, vmax=None, threshold=0.1, cut_coords=None):
    """Axial slices of a voxel map (nilearn ``plot_stat_map``) over ``bg_img`` (e.g. the mean EPI), with the
    outline of every ROI image in ``rois`` (name -> binary image), slice coordinates and L/R, on a symmetric
    colour scale up to ``vmax`` (shared between maps), voxels with ``|r| <= threshold`` left out."""
    from nilearn import plotting

    fig = plt.figure(figsize=(9, 2.6))
    display = plotting.plot_stat_map(img, bg_img=bg_img, display_mode="z", cut_coords=cut_coords or 6,
                                     threshold=threshold, vmax=vmax, figure=fig, title=title, colorbar=True,
                                     annotate=True, draw_cross=False, black_bg=False, dim=0)
    for colour, (name, roi) in zip(plt.cm.tab10.colors, (rois or {}).items()):
        display.add_contours(roi, levels=[0.5], colors=[colour], linewidths=0.8)
    if rois:
        handles = [plt.Line2D([], [], color=c, lw=1.5) for c in plt.cm.tab10.colors[: len(rois)]]
        fig.legend(handles, list(rois), loc="lower left", fontsize=7, ncol=len(rois), frameon=False)
    return fig


def voxel_scatter(r_x, r_y, labels, names=("ridge", "autoencoder")):
    """Voxel-wise r of two models against each other, coloured by ROI (``labels``: a name per voxel)."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for colour, roi in zip(plt.cm.tab10.colors, dict.fromkeys(labels)):
        voxels = np.asarray(labels) == roi
        ax.scatter(r_x[voxels], r_y[voxels], s=3, alpha=0.5, color=colour, label=roi)
    finite = np.isfinite(r_x) & np.isfinite(r_y)
    low, high = (min(r_x[finite].min(), r_y[finite].min()), max(r_x[finite].max(), r_y[finite].max())) \
        if finite.any() else (-1, 1)
    ax.plot([low, high], [low, high], color="grey", lw=0.8)
    ax.set_xlabel(f"{names[0]} r (test block)")
    ax.set_ylabel(f"{names[1]} r (test block)")
    ax.set_title("voxel-wise encoding r", fontsize=9)
    ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    return fig
