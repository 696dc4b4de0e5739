"""The paper's figures (3-7) and the critical-difference diagram, as PNG and PDF.

Every function takes already-loaded arrays and an output stem, and returns the written paths;
finding and loading inputs is `analysis.artefacts`' job, choosing them `analysis.run`'s. The Agg
backend is forced so that the figures render on machines without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from analysis.io import save_figure  # noqa: E402

CLASS_COLOURS = ("#9e9e9e", "#d62728", "#2ca02c", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")


def class_colour(index: int) -> str:
    """Background (0) grey, then one fixed colour per foreground class."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


# --------------------------------------------------------------------------- Fig. 3
def similarity_figure(groups: dict[str, dict], out_stem: Path, bins: int = 40) -> list[Path]:
    """Positive and negative anchor similarities of ICL, one histogram per condition.

    `groups` maps a condition label (e.g. "with US") to arrays `positive` and `negative`.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=False)
    edges = np.linspace(-1.0, 1.0, bins + 1)
    for ax, kind in zip(axes, ("positive", "negative")):
        for i, (label, data) in enumerate(groups.items()):
            values = np.clip(np.asarray(data[kind], dtype=float), -1.0, 1.0)
            colour = f"C{i}"
            if values.size:
                ax.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=colour)
                ax.hist(values, bins=edges, density=True, histtype="step", color=colour,
                        label=f"{label} (mean {values.mean():.3f}, n={values.size})")
                ax.axvline(values.mean(), color=colour, linestyle="--", linewidth=1)
            else:
                ax.plot([], [], color=colour, label=f"{label} (no samples)")
        ax.set_xlabel(f"{kind} similarity (cosine)")
        ax.set_ylabel("density")
        ax.set_xlim(-1, 1)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Influence of unconcerned samples (US) on ICL")
    fig.tight_layout()
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Figs. 4 and 7
def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of at most max_points of n points, uniformly at random (seeded)."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def tsne_embedding(features: np.ndarray, seed: int, n_jobs: int, n_iter: int = 500) -> np.ndarray:
    """openTSNE 2-D embedding; the result depends on seed *and* n_jobs, so both are pinned."""
    from openTSNE import TSNE

    n = len(features)
    if n < 10:
        raise ValueError(f"t-SNE needs at least 10 points, got {n}")
    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter, initialization="pca",
                n_jobs=n_jobs, random_state=seed, verbose=False)
    return np.asarray(tsne.fit(np.asarray(features, dtype=np.float64)))


def tsne_figure(panels: list[tuple[str, dict]], out_stem: Path, title: str, max_points: int = 1000,
                seed: int = 0, n_jobs: int = 1, n_iter: int = 500) -> list[Path]:
    """One t-SNE panel per (title, features dict): colour = class, marker = inner (o) / boundary (^)."""
    if not panels:
        raise ValueError("tsne_figure needs at least one panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
    for ax, (panel_title, data) in zip(axes[0], panels):
        idx = subsample(len(data["features"]), max_points, seed)
        xy = tsne_embedding(data["features"][idx], seed, n_jobs, n_iter)
        classes = data["class_index"][idx]
        boundary = data["boundary"][idx].astype(bool)
        for c in np.unique(classes):
            for is_boundary, marker in ((False, "o"), (True, "^")):
                sel = (classes == c) & (boundary == is_boundary)
                if sel.any():
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=6, marker=marker, c=class_colour(int(c)),
                               alpha=0.7, linewidths=0)
        ax.set_title(f"{panel_title} (n={len(idx)})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    names = panels[0][1]["class_names"]
    handles = [plt.Line2D([], [], marker="s", linestyle="", color=class_colour(i), label=name)
               for i, name in enumerate(names)]
    handles += [plt.Line2D([], [], marker="o", linestyle="", color="k", label="inner"),
                plt.Line2D([], [], marker="^", linestyle="", color="k", label="boundary")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Fig. 5
def sweep_heatmap(grids: list[tuple[str, pd.DataFrame]], out_stem: Path,
                  highlight: tuple[float, float] | None = None) -> list[Path]:
    """Dice (%) heatmap per setting: rows gamma_s, columns gamma_t; NaN cells shown blank."""
    import seaborn as sns

    if not grids:
        raise ValueError("sweep_heatmap needs at least one grid")
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 3.6), squeeze=False)
    for ax, (title, grid) in zip(axes[0], grids):
        sns.heatmap(grid, annot=True, fmt=".2f", cmap="viridis", ax=ax, cbar_kws={"label": "Dice (%)"},
                    mask=grid.isna())
        ax.set_xlabel("γ_t (teacher confidence)")
        ax.set_ylabel("γ_s (student confidence)")
        ax.set_title(title, fontsize=9)
        if highlight is not None and highlight[0] in grid.index and highlight[1] in grid.columns:
            i, j = list(grid.index).index(highlight[0]), list(grid.columns).index(highlight[1])
            ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.suptitle("Influence of the confidence thresholds γ_s and γ_t")
    fig.tight_layout()
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Fig. 6
def best_slice(label: np.ndarray) -> int:
    """The slice with the most foreground in the reference (first one on ties)."""
    return int(np.argmax((label > 0).reshape(label.shape[0], -1).sum(axis=1)))


def qualitative_figure(cases: list[dict], class_names: list[str], out_stem: Path) -> list[Path]:
    """Rows = cases; columns = image, ground truth, then each method's prediction, on one slice.

    Each case dict: case_id, image [H,W], label [H,W], preds {method label: [H,W]}.
    """
    if not cases:
        raise ValueError("qualitative_figure needs at least one case")
    methods = list(cases[0]["preds"])
    ncols = 2 + len(methods)
    colours = [class_colour(i) for i in range(len(class_names) + 1)]
    cmap = ListedColormap(colours)
    fig, axes = plt.subplots(len(cases), ncols, figsize=(1.9 * ncols, 2.0 * len(cases)), squeeze=False)
    for row, case in zip(axes, cases):
        panels = [("Image", None), ("Ground truth", case["label"])] + [(m, case["preds"][m]) for m in methods]
        for ax, (title, mask) in zip(row, panels):
            ax.imshow(case["image"], cmap="gray")
            if mask is not None:
                overlay = np.ma.masked_where(mask == 0, mask)
                ax.imshow(overlay, cmap=cmap, vmin=0, vmax=len(colours) - 1, alpha=0.55, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if ax is row[0]:
                ax.set_ylabel(str(case["case_id"]), fontsize=7)
        for ax, (title, _) in zip(row, panels):
            ax.set_title(title, fontsize=8)
    handles = [plt.Line2D([], [], marker="s", linestyle="", color=class_colour(i + 1), label=n)
               for i, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- CD diagram
def cd_diagram(mean_ranks: pd.Series, pairwise_p: pd.DataFrame, cd: float, alpha: float,
               out_stem: Path, title: str) -> list[Path]:
    """scikit-posthocs critical-difference diagram; crossbars join methods that Nemenyi does not
    separate at level alpha, the bar above the axis is the Nemenyi CD."""
    import scikit_posthocs as sp

    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.32 * len(mean_ranks)))
    sp.critical_difference_diagram(mean_ranks, pairwise_p, ax=ax, alpha=alpha, cd=cd,
                                   label_fmt_left="{label} ({rank:.2f})", label_fmt_right="({rank:.2f}) {label}")
    ax.set_title(f"{title}\nNemenyi CD = {cd:.3f} at α = {alpha:g}", fontsize=9, pad=28)
    return save_figure(fig, out_stem)
