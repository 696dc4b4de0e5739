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

CLASS_COLOURS = ("#9e9e9e", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
# the cardiac structures by name, as in the phantom's figure and docs/phantom.md (RV blue, MYO green,
# LV red): the class order differs between datasets (ACDC and M&Ms store RV and LV in opposite orders)
NAMED_CLASS_COLOURS = {"background": "#9e9e9e", "rv": "#1f77b4", "myo": "#2ca02c", "lv": "#d62728"}


def class_colour(index: int, name: str | None = None) -> str:
    """The colour of a class: by name for RV, MYO, LV and background (the same in every figure and
    doc, whatever the dataset's label order), else one fixed colour per class index."""
    if name is not None and str(name).lower() in NAMED_CLASS_COLOURS:
        return NAMED_CLASS_COLOURS[str(name).lower()]
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


# --------------------------------------------------------------------------- Fig. 3
def similarity_range(groups: dict[str, dict], pad: float = 0.05) -> tuple[float, float]:
    """The x range of Fig. 3: the data's range with a margin, within the cosine's [-1, 1]."""
    values = [np.asarray(d[k], dtype=float) for d in groups.values() for k in ("positive", "negative")]
    values = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if values.size == 0:
        return -1.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    margin = max(pad, 0.05 * (hi - lo))
    return max(-1.0, lo - margin), min(1.0, hi + margin)


def similarity_figure(groups: dict[str, dict], out_stem: Path, bins: int = 40) -> list[Path]:
    """Positive and negative anchor similarities of ICL, one histogram per condition.

    `groups` maps a condition label (e.g. "with US") to arrays `positive` and `negative`. Both
    panels share the data's x range (not the whole [-1, 1]); the legend sits below the axes, so
    it covers neither the peaks nor the dashed mean lines.
    """
    from matplotlib.ticker import MaxNLocator

    lo, hi = similarity_range(groups)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.2), layout="constrained")
    edges = np.linspace(lo, hi, bins + 1)
    for ax, kind in zip(axes, ("positive", "negative")):
        for i, (label, data) in enumerate(groups.items()):
            values = np.clip(np.asarray(data[kind], dtype=float), -1.0, 1.0)
            colour = f"C{i}"
            if values.size:
                ax.hist(values, bins=edges, density=True, histtype="stepfilled", alpha=0.35, color=colour)
                ax.hist(values, bins=edges, density=True, histtype="step", color=colour,
                        label=f"{label}\nmean {values.mean():.3f} (dashed), n = {values.size}")
                ax.axvline(values.mean(), color=colour, linestyle="--", linewidth=1)
            else:
                ax.plot([], [], color=colour, label=f"{label}\nno samples")
        ax.set_xlabel(f"{kind} similarity (cosine)", fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False, ncol=1)
    fig.suptitle("Influence of unconcerned samples (US) on ICL", fontsize=10)
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Figs. 4 and 7
def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of at most max_points of n points, uniformly at random (seeded)."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def tsne_problem(features: np.ndarray) -> str | None:
    """Why these features cannot be embedded, or None. Identical vectors (a collapsed projection
    head, or all zeros) have no principal component: openTSNE's PCA initialisation divides by
    its zero spread and returns NaN coordinates."""
    x = np.asarray(features, dtype=np.float64)
    if not np.isfinite(x).all():
        return f"{int((~np.isfinite(x)).any(axis=1).sum())} of {len(x)} feature vectors hold NaN or inf"
    if len(x) and np.ptp(x, axis=0).max(initial=0.0) == 0.0:
        what = "zero" if not x.any() else "identical"
        return f"all {len(x)} feature vectors are {what} (collapsed features): nothing to embed"
    return None


def tsne_embedding(features: np.ndarray, seed: int, n_jobs: int, n_iter: int = 500) -> np.ndarray:
    """openTSNE 2-D embedding; the result depends on seed *and* n_jobs, so both are pinned.
    Features that cannot be embedded (tsne_problem) and a non-finite result are errors."""
    from openTSNE import TSNE

    n = len(features)
    if n < 10:
        raise ValueError(f"t-SNE needs at least 10 points, got {n}")
    problem = tsne_problem(features)
    if problem:
        raise ValueError(f"t-SNE: {problem}")
    perplexity = float(min(30.0, (n - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter, initialization="pca",
                n_jobs=n_jobs, random_state=seed, verbose=False)
    xy = np.asarray(tsne.fit(np.asarray(features, dtype=np.float64)))
    if not np.isfinite(xy).all():
        raise ValueError(f"t-SNE of {n} points returned non-finite coordinates")
    return xy


def tsne_figure(panels: list[tuple[str, dict]], out_stem: Path, title: str, max_points: int = 1000,
                seed: int = 0, n_jobs: int = 1, n_iter: int = 500) -> list[Path]:
    """One t-SNE panel per (title, features dict): colour = class, marker = inner (o) / boundary (^).
    A panel whose features cannot be embedded (tsne_problem) says why in place of the points."""
    if not panels:
        raise ValueError("tsne_figure needs at least one panel")
    n = len(panels)
    width = min(7.0, 2.6 * n)  # page width at most: read at about 1:1 in REPORT.html
    fig, axes = plt.subplots(1, n, figsize=(width, width / n + 1.0), squeeze=False)
    for ax, (panel_title, data) in zip(axes[0], panels):
        idx = subsample(len(data["features"]), max_points, seed)
        problem = tsne_problem(data["features"][idx])
        if problem:
            ax.text(0.5, 0.5, "not embedded:\n" + problem.replace(" (", "\n("), ha="center", va="center",
                    fontsize=7, wrap=True, transform=ax.transAxes)
            ax.set_title(f"{panel_title} (n={len(idx)})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        xy = tsne_embedding(data["features"][idx], seed, n_jobs, n_iter)
        classes = data["class_index"][idx]
        boundary = data["boundary"][idx].astype(bool)
        names = list(data["class_names"])
        for c in np.unique(classes):
            for is_boundary, marker in ((False, "o"), (True, "^")):
                sel = (classes == c) & (boundary == is_boundary)
                if sel.any():
                    colour = class_colour(int(c), names[int(c)] if int(c) < len(names) else None)
                    ax.scatter(xy[sel, 0], xy[sel, 1], s=6, marker=marker, c=colour, alpha=0.7, linewidths=0)
        ax.set_title(f"{panel_title} (n={len(idx)})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    names = panels[0][1]["class_names"]
    handles = [plt.Line2D([], [], marker="s", linestyle="", color=class_colour(i, name), label=name)
               for i, name in enumerate(names)]
    handles += [plt.Line2D([], [], marker="o", linestyle="", color="k", label="inner"),
                plt.Line2D([], [], marker="^", linestyle="", color="k", label="boundary")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
               handletextpad=0.2, columnspacing=1.0)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Fig. 5
SWEEP_MIN_SPAN = 5.0  # Dice points: the colour scale of Fig. 5 spans at least this much


def sweep_colour_range(grids, spreads=None, min_span: float = SWEEP_MIN_SPAN) -> tuple[float, float]:
    """Colour limits shared by every panel of Fig. 5: the values' range widened to at least
    `min_span` points and to the mean ± 2 SD over seeds, so that a difference of a few tenths of a
    point (well within the noise of one training seed) does not span the whole colour bar."""
    values = np.concatenate([g.to_numpy(dtype=float).ravel() for g in grids])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 100.0)
    sd = 0.0
    if spreads is not None:
        sds = np.concatenate([s.to_numpy(dtype=float).ravel() for s in spreads if s is not None] or [np.zeros(0)])
        sds = sds[np.isfinite(sds)]
        sd = float(sds.max()) if sds.size else 0.0
    half = max((hi - lo) / 2, min_span / 2, 2 * sd)
    centre = (lo + hi) / 2
    return max(0.0, centre - half), min(100.0, centre + half)


def sweep_heatmap(grids: list[tuple[str, pd.DataFrame]], out_stem: Path,
                  highlight: tuple[float, float] | None = None, spreads: list[pd.DataFrame | None] | None = None,
                  n_seeds: list[int] | None = None) -> list[Path]:
    """Dice (%) heatmap per setting: rows gamma_s, columns gamma_t; NaN cells shown blank.

    Cells read 'mean ± SD' over seeds where `spreads` gives the SD (several seeds); one colour
    scale for all panels (sweep_colour_range); the panel title says how many seeds."""
    import seaborn as sns

    if not grids:
        raise ValueError("sweep_heatmap needs at least one grid")
    spreads = spreads or [None] * len(grids)
    n_seeds = n_seeds or [1] * len(grids)
    vmin, vmax = sweep_colour_range([g for _, g in grids], spreads)
    fig, axes = plt.subplots(1, len(grids), figsize=(3.6 * len(grids) + 0.6, 3.2), squeeze=False, layout="constrained")
    for ax, (title, grid), sd, n in zip(axes[0], grids, spreads, n_seeds):
        if sd is not None and n > 1:
            annot = grid.copy().astype(object)
            for r in grid.index:
                for c in grid.columns:
                    annot.loc[r, c] = "" if np.isnan(grid.loc[r, c]) else f"{grid.loc[r, c]:.1f}\n± {sd.loc[r, c]:.1f}"
            annot, fmt = annot.to_numpy(), ""
        else:
            annot, fmt = True, ".2f"
        sns.heatmap(grid, annot=annot, fmt=fmt, cmap="viridis", vmin=vmin, vmax=vmax, ax=ax,
                    cbar_kws={"label": "Dice (%)"}, mask=grid.isna(), annot_kws={"fontsize": 8})
        ax.set_xlabel("γ_t (teacher confidence)", fontsize=8)
        ax.set_ylabel("γ_s (student confidence)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.collections[0].colorbar.ax.tick_params(labelsize=8)
        ax.collections[0].colorbar.set_label("Dice (%)", fontsize=8)
        seeds = "1 seed: no spread" if n <= 1 else f"mean ± SD over {n} seeds"
        ax.set_title(f"{title} ({seeds})", fontsize=9)
        if highlight is not None and highlight[0] in grid.index and highlight[1] in grid.columns:
            i, j = list(grid.index).index(highlight[0]), list(grid.columns).index(highlight[1])
            ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.suptitle("Influence of the confidence thresholds γ_s and γ_t", fontsize=10)
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- Fig. 6
def best_slice(label: np.ndarray) -> int:
    """The slice with the most foreground in the reference (first one on ties)."""
    return int(np.argmax((label > 0).reshape(label.shape[0], -1).sum(axis=1)))


QUALITATIVE_COLUMNS = 5  # panels per row: about 200 px each on a 1100 px page, titles readable


def qualitative_figure(cases: list[dict], class_names: list[str], out_stem: Path,
                       columns: int = QUALITATIVE_COLUMNS) -> list[Path]:
    """Per case a block of panels (image, ground truth, then each method's prediction, one slice),
    `columns` panels a row, headed by the case; class colours by name (class_colour), legend on top.

    Each case dict: case_id, image [H,W], label [H,W], preds {method label: [H,W]}. The figure is
    laid out to be read at page width (7 in) rather than as one long strip of small panels.
    """
    if not cases:
        raise ValueError("qualitative_figure needs at least one case")
    methods = list(cases[0]["preds"])
    n_panels = 2 + len(methods)
    columns = max(1, min(columns, n_panels))
    rows_per_case = int(np.ceil(n_panels / columns))
    colours = [class_colour(0, "background")] + [class_colour(i + 1, n) for i, n in enumerate(class_names)]
    cmap = ListedColormap(colours)
    panel_in = 7.0 / columns
    fig = plt.figure(figsize=(7.0, len(cases) * (rows_per_case * (panel_in + 0.25) + 0.3) + 0.4),
                     layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(cases), 1))
    for subfig, case in zip(subfigs, cases):
        subfig.suptitle(f"case {case['case_id']}", fontsize=9, fontweight="bold")
        axes = subfig.subplots(rows_per_case, columns, squeeze=False).ravel()
        panels = [("Image", None), ("Ground truth", case["label"])] + [(m, case["preds"][m]) for m in methods]
        for ax, (title, mask) in zip(axes, panels):
            ax.imshow(case["image"], cmap="gray")
            if mask is not None:
                overlay = np.ma.masked_where(mask == 0, mask)
                ax.imshow(overlay, cmap=cmap, vmin=0, vmax=len(colours) - 1, alpha=0.55, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(panels):]:
            ax.axis("off")
    handles = [plt.Line2D([], [], marker="s", linestyle="", markersize=8, color=colours[i + 1], label=n)
               for i, n in enumerate(class_names)]
    fig.legend(handles=handles, loc="outside upper center", ncol=len(handles), fontsize=8, frameon=False)
    return save_figure(fig, out_stem)


# --------------------------------------------------------------------------- CD diagram
COLUMN_WIDTH_IN = 3.4  # one column of a two-column paper (IEEE/ICASSP: 3.39 in)
_MIN_AXIS_IN = 0.9  # shortest rank axis before the labels' font is reduced


def nemenyi_cliques(order: list, pairwise_p: pd.DataFrame, alpha: float) -> list[tuple[int, int]]:
    """Maximal runs (i, j), i < j, of positions in rank order whose every pair Nemenyi does not
    separate (p > alpha): the bars of the CD diagram."""
    k = len(order)
    runs = []
    for i in range(k):
        j = i
        while j + 1 < k and all(float(pairwise_p.loc[order[a], order[j + 1]]) > alpha for a in range(i, j + 1)):
            j += 1
        if j > i:
            runs.append((i, j))
    return [r for r in runs if not any(o != r and o[0] <= r[0] and r[1] <= o[1] for o in runs)]


def _text_size(fig, renderer, text: str, fontsize: float) -> tuple[float, float]:
    """Width and height of a text in inches."""
    artist = fig.text(0, 0, text, fontsize=fontsize)
    box = artist.get_window_extent(renderer)
    artist.remove()
    return box.width / fig.dpi, box.height / fig.dpi


def cd_diagram_figure(mean_ranks: pd.Series, pairwise_p: pd.DataFrame, cd: float, alpha: float,
                      width: float = COLUMN_WIDTH_IN, fontsize: float = 7.0):
    """Demšar's critical-difference diagram, laid out in inches at `width` so that nothing overlaps.

    Rank axis on top (1 = best, on the left) with the Nemenyi CD bar and its label above it; the
    better half of the methods labelled on the left, the other half on the right, one row each,
    joined to their mean rank by an elbow line with a marker at the bend (tied methods get different
    rows, so their markers never coincide); thick bars under the axis join methods that Nemenyi
    does not separate at alpha. Text is measured, and the font shrinks (to 5 pt) before the
    figure widens when long names leave too short an axis.
    """
    if len(mean_ranks) < 2:
        raise ValueError("a CD diagram needs at least 2 methods")
    order = sorted(mean_ranks.index, key=lambda m: (float(mean_ranks[m]), str(m)))
    k = len(order)
    n_left = (k + 1) // 2
    left, right = order[:n_left], order[n_left:]
    left_text = [f"{m} ({float(mean_ranks[m]):.2f})" for m in left]
    right_text = [f"({float(mean_ranks[m]):.2f}) {m}" for m in right]
    lo, hi = 1.0, float(max(k, int(np.ceil(1.0 + cd - 1e-12))))
    cd_text = f"CD = {cd:.3f} (α = {alpha:g})"
    margin, pad, elbow = 0.04, 0.03, 0.08

    fig = plt.figure(figsize=(width, 1.0))
    renderer = fig.canvas.get_renderer()
    for size in np.arange(fontsize, 4.99, -0.5):
        lw = max(_text_size(fig, renderer, t, size)[0] for t in left_text)
        rw = max((_text_size(fig, renderer, t, size)[0] for t in right_text), default=0.0)
        span = width - 2 * (margin + pad + elbow) - lw - rw
        if span >= _MIN_AXIS_IN:
            break
    fig_width = max(width, width - span + _MIN_AXIS_IN)
    h = max(_text_size(fig, renderer, t, size)[1] for t in left_text + right_text + [cd_text, "0123456789"])
    cd_w = _text_size(fig, renderer, cd_text, size)[0]
    tick_w = _text_size(fig, renderer, str(int(hi)), size)[0]

    x_left_text = margin + lw
    x0 = x_left_text + pad + elbow
    x_right_text = fig_width - margin - rw
    x1 = x_right_text - pad - elbow

    def x_of(rank: float) -> float:
        return x0 + (rank - lo) / (hi - lo) * (x1 - x0)

    cliques = nemenyi_cliques(order, pairwise_p, alpha)
    y_cd_text = margin + h / 2
    y_cd_bar = margin + h + 0.06
    y_ticks_text = y_cd_bar + 0.05 + h / 2
    y_axis = y_ticks_text + h / 2 + 0.06
    clique_step = 0.055
    y_cliques = [y_axis + 0.06 + i * clique_step for i in range(len(cliques))]
    row_step = max(1.35 * h, 0.12)
    y_first_row = y_axis + 0.06 + len(cliques) * clique_step + 0.04 + h / 2
    right_shift = 0.5 if len(left) == len(right) else 0.0  # keeps a tie across the halves on two rows
    y_left = [y_first_row + i * row_step for i in range(len(left))]
    y_right = [y_first_row + (len(right) - 1 - i + right_shift) * row_step for i in range(len(right))]
    height = max(y_left + y_right) + h / 2 + margin

    fig.set_size_inches(fig_width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig_width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    line = dict(color="black", linewidth=0.7, solid_capstyle="butt")

    # rank axis, ticks and their labels
    ax.plot([x_of(lo), x_of(hi)], [y_axis, y_axis], **line)
    spacing = (x1 - x0) / (hi - lo)
    step = 1
    while step * spacing < 1.8 * tick_w:
        step += 1
    for r in range(int(lo), int(hi) + 1):
        ax.plot([x_of(r), x_of(r)], [y_axis - 0.04, y_axis], **line)
        if (r - int(lo)) % step == 0:
            ax.text(x_of(r), y_ticks_text, str(r), ha="center", va="center", fontsize=size)
    # CD bar and its label, above the tick labels
    ax.plot([x_of(lo), x_of(lo + cd)], [y_cd_bar, y_cd_bar], **line)
    for end in (lo, lo + cd):
        ax.plot([x_of(end), x_of(end)], [y_cd_bar - 0.025, y_cd_bar + 0.025], **line)
    x_cd = min(max(x_of(lo), margin), fig_width - margin - cd_w)
    ax.text(x_cd, y_cd_text, cd_text, ha="left", va="center", fontsize=size)
    # Nemenyi cliques
    for (i, j), y in zip(cliques, y_cliques):
        ax.plot([x_of(float(mean_ranks[order[i]])) - 0.03, x_of(float(mean_ranks[order[j]])) + 0.03], [y, y],
                color="black", linewidth=2.0, solid_capstyle="butt")
    # methods: elbow lines, markers at the bend, labels
    for methods, texts, ys, side in ((left, left_text, y_left, "left"), (right, right_text, y_right, "right")):
        for method, text, y in zip(methods, texts, ys):
            x = x_of(float(mean_ranks[method]))
            x_end = x_left_text + pad if side == "left" else x_right_text - pad
            ax.plot([x_end, x, x], [y, y, y_axis], **line)
            ax.plot([x], [y], marker="o", markersize=3, color="black", linestyle="none")
            if side == "left":
                ax.text(x_left_text, y, text, ha="right", va="center", fontsize=size)
            else:
                ax.text(x_right_text, y, text, ha="left", va="center", fontsize=size)
    return fig


def cd_diagram(mean_ranks: pd.Series, pairwise_p: pd.DataFrame, cd: float, alpha: float,
               out_stem: Path, width: float = COLUMN_WIDTH_IN) -> list[Path]:
    """The critical-difference diagram (cd_diagram_figure) as PNG and PDF at its own size."""
    return save_figure(cd_diagram_figure(mean_ranks, pairwise_p, cd, alpha, width=width), out_stem, tight=False)


# --------------------------------------------------------------------------- Bayesian signed-rank
BAYES_COLOURS = ("#2ca02c", "#bdbdbd", "#d62728")


def bayes_figure(table: pd.DataFrame, control: str, rope: float, unit: str, out_stem: Path,
                 width: float = COLUMN_WIDTH_IN) -> list[Path]:
    """One stacked bar per method: P(control better), P(equivalent), P(control worse)."""
    if table.empty:
        raise ValueError("bayes_figure needs at least one method")
    methods = list(table["method"])
    n = len(methods)
    fig, ax = plt.subplots(figsize=(width, 0.9 + 0.2 * n), layout="constrained")
    y = np.arange(n)
    start = np.zeros(n)
    parts = (("p_better", f"{control} better"), ("p_equivalent", "equivalent"), ("p_worse", f"{control} worse"))
    for (column, label), colour in zip(parts, BAYES_COLOURS):
        values = table[column].to_numpy(dtype=float)
        ax.barh(y, values, left=start, color=colour, label=label, height=0.7)
        for yi, x, v in zip(y, start, values):
            if v >= 0.15:
                ax.text(x + v / 2, yi, f"{v:.2f}", ha="center", va="center", fontsize=6)
        start = start + values
    ax.set_yticks(y, methods, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"posterior probability (ROPE ±{rope:g} {unit})", fontsize=7)
    ax.tick_params(axis="x", labelsize=6)
    ax.legend(fontsize=6, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
              handlelength=1.0, columnspacing=0.8)
    return save_figure(fig, out_stem)
