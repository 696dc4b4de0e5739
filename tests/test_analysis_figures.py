"""Every figure writes PNG and PDF from small synthetic inputs; t-SNE is deterministic; HTML converter;
the CD diagram is laid out without overlaps at the paper's column width."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.artefacts import ArtefactError, RunId, find_artefacts, identify, load_features, load_prediction
from analysis.figure_inputs import sweep_grids
from analysis.collect import normalise
from analysis.html import markdown_to_html
from analysis.synthetic import features, prediction


def assert_written(paths):
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    for p in paths:
        assert p.stat().st_size > 1000


def test_similarity_figure(tmp_path):
    rng = np.random.default_rng(0)
    groups = {"with US": {"positive": rng.uniform(0.3, 1, 50), "negative": rng.uniform(-1, 0.2, 50)},
              "without US": {"positive": np.array([]), "negative": rng.uniform(-1, 0.5, 50)}}
    assert_written(figures.similarity_figure(groups, tmp_path / "fig3"))


def test_tsne_figure_and_determinism(tmp_path):
    data = features(np.random.default_rng(0), per_group=12, spread=0.2)  # 96 points
    assert_written(figures.tsne_figure([("A", data), ("B", data)], tmp_path / "fig4", "t", max_points=60,
                                       seed=1, n_jobs=1, n_iter=100))
    x = data["features"][:60]
    a = figures.tsne_embedding(x, seed=3, n_jobs=1, n_iter=100)
    b = figures.tsne_embedding(x, seed=3, n_jobs=1, n_iter=100)
    assert a.shape == (60, 2) and np.array_equal(a, b)
    assert figures.subsample(96, 60, seed=1).tolist() == figures.subsample(96, 60, seed=1).tolist()
    assert figures.subsample(10, 60, seed=1).tolist() == list(range(10))
    with pytest.raises(ValueError, match="at least 10 points"):
        figures.tsne_embedding(x[:5], seed=0, n_jobs=1)


def test_sweep_heatmap_from_variant_names(tmp_path):
    rows = [{"dataset": "acdc", "ratio": 5, "method": "spcl", "variant": f"sweep_gs{gs:g}_gt{gt:g}", "case_id": "c",
             "dice": 0.8 + gs / 10 + gt / 100} for gs in (0.65, 0.75) for gt in (0.9, 0.95)]
    rows.append({"dataset": "acdc", "ratio": 5, "method": "spcl", "variant": "default", "case_id": "c", "dice": 0.1})
    [(setting, grid)] = sweep_grids(normalise(pd.DataFrame(rows), ("dice",), "hand"))
    assert setting == ("acdc", 5.0)
    assert grid.index.tolist() == [0.65, 0.75] and grid.columns.tolist() == [0.9, 0.95]
    assert grid.loc[0.75, 0.95] == pytest.approx(100 * (0.8 + 0.075 + 0.0095))
    assert_written(figures.sweep_heatmap([("ACDC 5%", grid)], tmp_path / "fig5", highlight=(0.75, 0.95)))


def test_qualitative_figure(tmp_path):
    rng = np.random.default_rng(0)
    case = prediction(rng, 24, 0.9)
    z = figures.best_slice(case["label"])
    assert z != 0  # slice 0 of the synthetic case is empty
    rows = [{"case_id": "p1", "image": case["image"][z], "label": case["label"][z],
             "preds": {"SPCL": case["pred"][z], "BASS": case["label"][z]}}]
    assert_written(figures.qualitative_figure(rows, ["RV", "MYO", "LV"], tmp_path / "fig6"))


def test_cd_diagram(tmp_path):
    ranks = pd.Series({"A": 1.2, "B": 2.0, "C": 2.8})
    p = pd.DataFrame([[1, 0.5, 0.01], [0.5, 1, 0.3], [0.01, 0.3, 1]], index=list("ABC"), columns=list("ABC"))
    assert_written(figures.cd_diagram(ranks, p, cd=1.0, alpha=0.1, out_stem=tmp_path / "cd"))
    # A-B and B-C are not separated (p > 0.1), A-C is: two bars
    assert figures.nemenyi_cliques(["A", "B", "C"], p, 0.1) == [(0, 1), (1, 2)]


def test_bayes_figure(tmp_path):
    table = pd.DataFrame({"method": ["BASS", "ABD"], "p_better": [0.1, 0.98], "p_equivalent": [0.9, 0.02],
                          "p_worse": [0.0, 0.0]})
    assert_written(figures.bayes_figure(table, "SPCL", 1.0, "dice points (%)", tmp_path / "bayes"))


def test_artefact_identity_and_loading_errors(tmp_path):
    run_dir = tmp_path / "runs" / "acdc" / "r2.5" / "spcl" / "relation_pos" / "s1"
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "similarities.npz", positive=np.ones(3), negative=np.zeros(3))
    assert identify(run_dir) == RunId("acdc", 2.5, "spcl", "relation_pos", 1)
    loose = tmp_path / "loose"
    loose.mkdir()
    np.savez(loose / "features.npz", features=np.zeros((3, 2)))
    found = find_artefacts(tmp_path)
    assert list(found.similarities) == [RunId("acdc", 2.5, "spcl", "relation_pos", 1)]
    assert found.unattributed == [str(loose / "features.npz")]
    with pytest.raises(ArtefactError, match=r"features.npz: missing array\(s\) \['class_index', 'boundary', 'class_names'\]"):
        load_features(loose / "features.npz")
    np.savez(loose / "case.npz", image=np.zeros((2, 4, 4)), label=np.zeros((2, 4, 4)), pred=np.zeros((2, 4, 5)))
    with pytest.raises(ArtefactError, match="must share one"):
        load_prediction(loose / "case.npz")


def test_markdown_to_html_covers_report_markup(tmp_path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "f.png")
    md = ("# Title\n\nSome **bold** and `code` <script>, [a link](#title).\n\n| A | B |\n|:---|---:|\n| <u>x</u> | **1 \\| 2** |\n\n"
          "- item one\n- item two\n\n![A caption](f.png)\n\n```yaml\nkey: <v>\n```\n| stray pipe line\n")
    html = markdown_to_html(md, title="T", base_dir=tmp_path)
    assert '<h1 id="title">Title</h1>' in html and '<a href="#title">a link</a>' in html
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "&lt;script&gt;" in html and "<u>x</u>" in html and "<strong>1 | 2</strong>" in html
    assert '<td class="num">' in html and "<li>item two</li>" in html
    assert 'src="data:image/png;base64,' in html and "<figcaption>A caption</figcaption>" in html
    assert "key: &lt;v&gt;" in html and "<p>| stray pipe line</p>" in html


def _segments(ax):
    """Axis-aligned segments of every line drawn, in display pixels."""
    out = []
    for line in ax.lines:
        xy = ax.transData.transform(np.column_stack(line.get_data()))
        out += [(xy[i], xy[i + 1]) for i in range(len(xy) - 1)]
    return out


def _marker_boxes(ax, fig):
    from matplotlib.transforms import Bbox

    boxes = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " "):
            continue
        r = line.get_markersize() / 2 * fig.dpi / 72.0
        for x, y in ax.transData.transform(np.column_stack(line.get_data())):
            boxes.append(Bbox([[x - r, y - r], [x + r, y + r]]))
    return boxes


def assert_laid_out_without_overlaps(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [ax] = fig.axes
    texts = [t for t in ax.texts + fig.texts if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    markers = _marker_boxes(ax, fig)
    for t, b in zip(texts, boxes):  # inside the figure
        assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= fig.bbox.x1 and b.y1 <= fig.bbox.y1, t.get_text()
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())
        for m in markers:
            assert not boxes[i].overlaps(m), texts[i].get_text()
        box = boxes[i]
        for a, b in _segments(ax):  # no line runs through a label
            (x0, x1), (y0, y1) = sorted((a[0], b[0])), sorted((a[1], b[1]))
            crosses_x = x0 < box.x1 and box.x0 < x1 if x0 != x1 else box.x0 < x0 < box.x1
            crosses_y = y0 < box.y1 and box.y0 < y1 if y0 != y1 else box.y0 < y0 < box.y1
            assert not (crosses_x and crosses_y), texts[i].get_text()
    for i in range(len(markers)):  # tied methods' markers too
        for j in range(i + 1, len(markers)):
            assert not markers[i].overlaps(markers[j])
    return [t.get_text() for t in texts]


def _uniform_p(names, p):
    return pd.DataFrame(p, index=names, columns=names)


def test_cd_diagram_at_the_papers_column_width_has_no_overlaps():
    from analysis import stats

    t1 = pd.read_csv(Path(__file__).resolve().parents[1] / "results" / "reference" / "table1.csv")
    matrix = t1[t1["method"] != "suponly"].pivot_table(index=["dataset", "ratio"], columns="method", values="dice")
    result = stats.friedman(matrix)
    cd = stats.nemenyi_critical_difference(7, 6, alpha=0.1)  # 2.693 x sqrt(56/36) = 3.358
    fig = figures.cd_diagram_figure(result.mean_ranks, stats.nemenyi_pairwise(matrix), cd, 0.1)
    assert fig.get_size_inches()[0] == pytest.approx(figures.COLUMN_WIDTH_IN)
    texts = assert_laid_out_without_overlaps(fig)
    assert "CD = 3.358 (α = 0.1)" in texts and "spcl (1.00)" in texts and "(6.83) ugpcl" in texts
    # Nemenyi groups by hand: ranks 1, 2.33, 3.33, 4, 4.83, 5.67, 6.83 and CD 3.358 give the runs
    # spcl..bus (4 - 1 < CD), bass..admt (5.67 - 2.33 < CD) and bus..ugpcl (6.83 - 4 < CD)
    order = result.mean_ranks.sort_values().index.tolist()
    assert figures.nemenyi_cliques(order, stats.nemenyi_pairwise(matrix), 0.1) == [(0, 3), (1, 5), (3, 6)]
    plt.close(fig)


@pytest.mark.parametrize("ranks, cd", [
    ({"A": 1.5, "B": 1.5, "C": 3.0, "D": 4.0}, 1.2),  # a tie inside the left half
    ({"A": 1.0, "B": 2.5, "C": 2.5, "D": 4.0}, 1.2),  # a tie across the halves
    ({"C4.5": 3.143, "C4.5+m": 2.0, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}, 1.254),  # Demšar's
    ({"SupOnly": 1.0, "UGPCL": 2.0}, 4.5),  # a CD longer than the rank axis
    ({f"method {i}": 1 + (i * 7) % 12 / 1.1 for i in range(12)}, 3.0),  # twelve methods
])
def test_cd_diagram_layouts_without_overlaps(ranks, cd):
    ranks = pd.Series(ranks)
    fig = figures.cd_diagram_figure(ranks, _uniform_p(ranks.index, 0.5), cd, 0.05)
    assert fig.get_size_inches()[0] == pytest.approx(figures.COLUMN_WIDTH_IN)
    assert_laid_out_without_overlaps(fig)
    plt.close(fig)


def test_cd_diagram_with_names_too_long_for_a_column_widens_instead_of_overlapping():
    ranks = pd.Series({f"a-rather-long-method-name-{i}": 1.0 + i / 2 for i in range(6)})
    fig = figures.cd_diagram_figure(ranks, _uniform_p(ranks.index, 0.01), 2.0, 0.05)
    assert fig.get_size_inches()[0] > figures.COLUMN_WIDTH_IN  # after shrinking the font to 5 pt
    assert {t.get_fontsize() for t in fig.axes[0].texts} == {5.0}
    assert_laid_out_without_overlaps(fig)
    plt.close(fig)


def test_constant_features_are_named_not_embedded(tmp_path):
    from analysis.figure_inputs import FigureOptions, make_fig4
    from analysis.synthetic import write_synthetic_run

    data = features(np.random.default_rng(0), per_group=10, spread=0.2)  # 80 points
    constant = dict(data, features=np.ones_like(data["features"]))
    assert figures.tsne_problem(constant["features"][:60]) == \
        "all 60 feature vectors are identical (collapsed features): nothing to embed"
    assert "60 feature vectors are zero" in figures.tsne_problem(np.zeros((60, 4)))
    assert figures.tsne_problem(data["features"]) is None
    with pytest.raises(ValueError, match="identical"):  # not a NaN embedding
        figures.tsne_embedding(constant["features"], seed=0, n_jobs=1, n_iter=50)
    results = write_synthetic_run(tmp_path / "run", methods=("bus", "bass", "spcl"), n_cases=3, features_per_group=8,
                                  settings=(("phantom", 10.0),), sweep=None, ablation_setting=None)
    paths = sorted(find_artefacts(results).features.items())
    (bass_run, bass_file), = [(r, p) for r, p in paths if r.method == "bass"]
    loaded = dict(np.load(bass_file))
    np.savez(bass_file, **dict(loaded, features=np.zeros_like(loaded["features"])))
    opts = FigureOptions(tsne_points=40, tsne_iter=50)
    outcome = make_fig4(find_artefacts(results), tmp_path / "figs", opts)
    assert outcome.produced  # BUS and SPCL are embedded, BASS's panel says why
    assert "BASS: not embedded, all " in outcome.caption and "are zero (collapsed features)" in outcome.caption
    for _run, path in paths:
        loaded = dict(np.load(path))
        np.savez(path, **dict(loaded, features=np.zeros_like(loaded["features"])))
    outcome = make_fig4(find_artefacts(results), tmp_path / "figs2", opts)
    assert not outcome.produced and outcome.reason.startswith("no panel can be embedded: BUS: all ")
