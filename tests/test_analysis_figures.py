"""Every figure writes PNG and PDF from small synthetic inputs; t-SNE is deterministic; HTML converter."""

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
    assert_written(figures.cd_diagram(ranks, p, cd=1.0, alpha=0.1, out_stem=tmp_path / "cd", title="t"))


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
    md = ("# Title\n\nSome **bold** and `code` <script>.\n\n| A | B |\n|:---|---:|\n| <u>x</u> | **1 \\| 2** |\n\n"
          "- item one\n- item two\n\n![A caption](f.png)\n\n```yaml\nkey: <v>\n```\n| stray pipe line\n")
    html = markdown_to_html(md, title="T", base_dir=tmp_path)
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "&lt;script&gt;" in html and "<u>x</u>" in html and "<strong>1 | 2</strong>" in html
    assert '<td class="num">' in html and "<li>item two</li>" in html
    assert 'src="data:image/png;base64,' in html and "<figcaption>A caption</figcaption>" in html
    assert "key: &lt;v&gt;" in html and "<p>| stray pipe line</p>" in html
