"""Evaluation: native-grid inference, the results schema, saved predictions and feature samples, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from medpy.metric import binary as medpy_binary
from torch import nn

from methods.api import ConfigError, get_method, resolve_variant
from methods.data.types import Case
from methods.evaluation.evaluate import evaluate_method, main
from methods.evaluation.features import BalancedFeatureSampler
from methods.evaluation.inference import predict_case
from methods.evaluation.metrics import case_metrics, volume_diagonal
from methods.nets import NetFactory, NetOutput, NetworkProfile
from methods.results_schema import RESULT_COLUMNS

CLASSES = ("RV", "MYO", "LV")
IMG_SIZE = 32
TINY_NET = {"arch": "unet", "encoder": "resnet18", "decoder_channels": [16, 8, 8, 8, 8], "proj_hidden": 16, "proj_dim": 8}
RUN_CFG = {
    "method": "meanteacher",
    "variant": "default",
    "seed": 3,
    "data": {"dataset": "phantom", "ratio": 2.5, "img_size": IMG_SIZE},
}


def heart_case(i: int, shape=(3, 40, 36), spacing=(10.0, 1.5, 1.25)) -> Case:
    """A cartoon short-axis stack: LV disc inside a MYO ring, RV disc beside it (every class present)."""
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2 - 3)
    label2d = np.zeros((h, w), np.uint8)
    label2d[r < 12] = 2
    label2d[r < 7] = 3
    label2d[(np.hypot(yy - h / 2, xx - 5) < 6) & (label2d == 0)] = 1
    label = np.repeat(label2d[None], z, axis=0)
    noise = np.random.default_rng(i).normal(0, 0.05, shape).astype(np.float32)
    return Case(f"p{i:03d}_ED", f"p{i:03d}", "ED", label / 3.0 + noise, label, spacing)


@pytest.fixture(scope="module")
def method():
    cls = get_method("meanteacher")
    torch.manual_seed(0)
    m = cls(
        cfg=resolve_variant(cls, "default"),
        net_factory=NetFactory(NetworkProfile.from_dict(TINY_NET), len(CLASSES) + 1),
        num_classes=len(CLASSES) + 1,
        max_iters=10,
    )
    return m.eval()


class ThresholdNet(nn.Module):
    """Class 1 where the image is above 0.5: logits [0.5 - x, x - 0.5]; records how it was called."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((x.shape[0], self.training, torch.is_inference_mode_enabled()))
        logits = torch.cat([0.5 - x, x - 0.5], 1)
        return NetOutput(logits, x, x)


def block_case(shape, spacing=(8.0, 1.0, 1.0)) -> Case:
    image = np.zeros(shape, np.float32)
    image[:, 10:30, 8:20] = 1.0
    return Case("c_ED", "c", "ED", image, (image > 0.5).astype(np.uint8), spacing)


def test_predict_case_is_exact_on_the_training_grid():
    case = block_case((4, IMG_SIZE, IMG_SIZE))
    pred = predict_case(ThresholdNet(), case, IMG_SIZE, "cpu", batch_size=3)
    assert pred.dtype == np.uint8
    np.testing.assert_array_equal(pred, case.label)


def test_predict_case_resizes_back_to_the_native_grid():
    case = block_case((5, 40, 28))  # non-square, not the training size
    net = ThresholdNet().train()
    pred = predict_case(net, case, IMG_SIZE, "cpu", batch_size=2)
    assert pred.shape == (5, 40, 28) and pred.dtype == np.uint8
    np.testing.assert_array_equal(pred[:, 12:28, 10:18], 1)  # block interior
    assert pred[:, :8].sum() == 0 and pred[:, :, 22:].sum() == 0  # far from the block
    assert (pred == case.label).mean() > 0.97  # only edge pixels may move
    # batched slices, eval and inference mode during the forward, the previous mode restored after
    assert [c[0] for c in net.calls] == [2, 2, 1]
    assert all(not training and inference for _, training, inference in net.calls)
    assert net.training
    np.testing.assert_array_equal(predict_case(net, case, IMG_SIZE, "cpu", batch_size=16), pred)


def test_sampler_is_balanced_and_independent_of_batching():
    labels = torch.tensor([0] * 60 + [1] * 27 + [2] * 3).reshape(2, 5, 9)
    feats = torch.randn(2, 4, 5, 9)
    bound = torch.rand(2, 5, 9) > 0.5
    whole = BalancedFeatureSampler(3, per_class=10, seed=7)
    whole.add(feats, labels, bound)
    per_slice = BalancedFeatureSampler(3, per_class=10, seed=7)
    for b in range(2):
        per_slice.add(feats[b : b + 1], labels[b : b + 1], bound[b : b + 1])
    a, b = whole.result(), per_slice.result()
    assert np.bincount(a["class_index"]).tolist() == [10, 10, 3]  # a rare class keeps all it has
    for key in ("features", "class_index", "boundary"):
        np.testing.assert_array_equal(a[key], b[key])
    # every sampled row is a real pixel of its class, with its own boundary tag
    flat = feats.permute(0, 2, 3, 1).reshape(-1, 4).numpy()
    for f, c, t in zip(a["features"], a["class_index"], a["boundary"]):
        i = int(np.flatnonzero((flat == f).all(1))[0])
        assert labels.reshape(-1)[i] == c and bound.reshape(-1)[i] == t


def test_sampler_picks_uniformly():
    counts = np.zeros(10)
    for seed in range(400):
        s = BalancedFeatureSampler(1, per_class=5, seed=seed)
        s.add(torch.arange(10.0).reshape(1, 1, 1, 10), torch.zeros(1, 1, 10, dtype=torch.long), torch.zeros(1, 1, 10, dtype=torch.bool))
        counts[s.result()["features"][:, 0].astype(int)] += 1
    assert counts.sum() == 2000
    assert counts.min() > 150 and counts.max() < 250  # expected 200 each


def test_evaluate_method_rows_follow_the_schema(method):
    cases = [heart_case(0), heart_case(1, shape=(2, 36, 44))]
    df = evaluate_method(method, RUN_CFG, iter(cases), CLASSES, checkpoint="runs/x/final.pt", labelled_cases=2)
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert list(df.columns) == (
        "dataset ratio labelled_cases method variant seed case_id class_name dice jaccard hd95_mm hd95_px "
        "asd_mm evaluated_network checkpoint region region_centre evaluation selection uses_test_label precision "
        "memory_format"
    ).split()
    assert len(df) == 2 * len(CLASSES)
    assert df["case_id"].tolist() == ["p000_ED"] * 3 + ["p001_ED"] * 3
    assert df["class_name"].tolist() == list(CLASSES) * 2
    first = df.iloc[0]
    assert (first["dataset"], first["ratio"], first["labelled_cases"], first["method"], first["variant"], first["seed"]) == (
        "phantom", 2.5, 2, "meanteacher", "default", 3)
    assert set(df["evaluated_network"]) == {"student"} and set(df["checkpoint"]) == {"runs/x/final.pt"}
    # the numbers are the metrics of the native-grid prediction
    pred = predict_case(method.predictor(), cases[1], IMG_SIZE, "cpu")
    expected = pd.DataFrame(case_metrics(pred, cases[1].label, cases[1].spacing, CLASSES))
    got = df[df["case_id"] == "p001_ED"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[expected.columns], expected)


class ThresholdMethod(nn.Module):
    """The smallest object evaluate_method accepts: 3 classes, of which it only ever predicts 1."""

    num_classes = 3
    evaluated_network = "student"

    def __init__(self):
        super().__init__()
        self.net = ThresholdNet()

    def predictor(self):
        return self.net


def test_paper_compatible_mode_changes_only_the_missed_class():
    case = block_case((4, IMG_SIZE, IMG_SIZE))
    case.label[:, 2:5, 2:5] = 2  # class 2 is annotated but never predicted
    default = evaluate_method(ThresholdMethod(), RUN_CFG, [case], ("A", "B"), labelled_cases=1)
    paper = evaluate_method(ThresholdMethod(), RUN_CFG, [case], ("A", "B"), labelled_cases=1, paper_compatible=True)
    pd.testing.assert_frame_equal(default.iloc[:1], paper.iloc[:1])  # class A: found exactly, identical
    assert default.loc[1, "dice"] == paper.loc[1, "dice"] == 0.0
    assert default.loc[1, "hd95_mm"] == pytest.approx(volume_diagonal(case.label.shape, case.spacing))
    all_ones = np.ones(case.label.shape, bool)
    assert paper.loc[1, "hd95_px"] == pytest.approx(medpy_binary.hd95(all_ones, case.label == 2))


def test_evaluate_method_rejects_a_class_count_mismatch(method):
    with pytest.raises(ConfigError, match="foreground classes"):
        evaluate_method(method, RUN_CFG, [heart_case(0)], ("LV",), labelled_cases=1)


def test_predictions_are_saved_for_the_chosen_cases(method, tmp_path):
    cases = [heart_case(i) for i in range(3)]
    evaluate_method(method, RUN_CFG, cases, CLASSES, labelled_cases=1, predictions_dir=tmp_path / "first", prediction_cases=2)
    assert sorted(p.name for p in (tmp_path / "first").iterdir()) == ["p000_ED.npz", "p001_ED.npz"]
    with np.load(tmp_path / "first" / "p001_ED.npz") as f:
        assert sorted(f.files) == ["class_names", "image", "label", "pred", "spacing"]
        assert f["image"].dtype == np.float32 and f["label"].dtype == np.uint8 and f["pred"].dtype == np.uint8
        assert f["pred"].shape == f["label"].shape == f["image"].shape == cases[1].image.shape
        np.testing.assert_array_equal(f["pred"], predict_case(method.predictor(), cases[1], IMG_SIZE, "cpu"))
        np.testing.assert_array_equal(f["spacing"], cases[1].spacing)
        assert f["class_names"].tolist() == ["background", *CLASSES]
    evaluate_method(method, RUN_CFG, cases, CLASSES, labelled_cases=1, predictions_dir=tmp_path / "named", prediction_cases=["p002_ED"])
    assert [p.name for p in (tmp_path / "named").iterdir()] == ["p002_ED.npz"]
    with pytest.raises(ConfigError, match="p009_ED"):
        evaluate_method(method, RUN_CFG, cases, CLASSES, labelled_cases=1, predictions_dir=tmp_path / "x", prediction_cases=["p009_ED"])


def test_feature_sample_is_class_balanced_normalised_and_seeded(method, tmp_path):
    cases = [heart_case(0), heart_case(1)]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        evaluate_method(method, RUN_CFG, cases, CLASSES, labelled_cases=1,
                        features_path=tmp_path / f"{name}.npz", features_per_class=25, features_seed=seed)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b, np.load(tmp_path / "c.npz") as c:
        assert sorted(a.files) == ["boundary", "class_index", "class_names", "features"]
        assert a["features"].shape == (4 * 25, TINY_NET["proj_dim"]) and a["features"].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a["features"], axis=1), 1.0, atol=1e-5)
        assert a["class_index"].dtype == np.int64 and np.bincount(a["class_index"]).tolist() == [25] * 4
        assert a["boundary"].dtype == bool and 0 < a["boundary"].mean() < 1
        assert a["class_names"].tolist() == ["background", *CLASSES]
        np.testing.assert_array_equal(a["features"], b["features"])  # same seed, same sample
        assert not np.array_equal(a["features"], c["features"])


# --- the CLI, end to end on a trained checkpoint -----------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tiny_cache, tiny_split, tmp_path_factory):
    """A 1-iteration meanteacher run (the real engine) on the shared phantom cache and split."""
    from methods.runconfig import parse_run_config
    from methods.training.engine import train

    out = tmp_path_factory.mktemp("eval_e2e") / "run"
    cfg = parse_run_config({
        "method": "meanteacher", "seed": 1, "out_dir": str(out),
        "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom",
                 "ratio": 5, "img_size": IMG_SIZE, "labelled_batch": 2, "unlabelled_batch": 2},
        "network": TINY_NET,
        "train": {"iterations": 1, "device": "cpu", "progress": False},
    })
    train(cfg)
    return {"checkpoint": out / "final.pt", "cache": tiny_cache, "split": tiny_split}


def test_cli_writes_the_csv_predictions_and_features(trained_run, tmp_path, capsys):
    r = trained_run
    split = json.loads(r["split"].read_text())
    test_cases = sorted(f"{p}_{phase}" for p in split["test"] for phase in ("ED", "ES"))
    out = tmp_path / "metrics" / "test.csv"
    code = main([
        "--checkpoint", str(r["checkpoint"]), "--cache", str(r["cache"]), "--split", str(r["split"]),
        "--out", str(out), "--predictions-dir", str(tmp_path / "pred"), "--prediction-cases", test_cases[-1],
        "--features", str(tmp_path / "features.npz"), "--features-per-class", "5", "--device", "cpu",
    ])
    assert code == 0
    df = pd.read_csv(out)
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert sorted(df["case_id"].unique()) == test_cases
    assert len(df) == len(test_cases) * 3 and df["class_name"].tolist()[:3] == ["RV", "MYO", "LV"]
    row = df.iloc[0]
    assert (row["dataset"], row["ratio"], row["labelled_cases"], row["method"], row["variant"], row["seed"]) == (
        "phantom", 5, len(split["train_labelled"]), "meanteacher", "default", 1)
    assert row["evaluated_network"] == "student" and row["checkpoint"] == str(r["checkpoint"])
    assert [p.name for p in (tmp_path / "pred").iterdir()] == [f"{test_cases[-1]}.npz"]
    with np.load(tmp_path / "features.npz") as f:
        assert np.bincount(f["class_index"]).tolist() == [5] * 4
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "Dice RV" in summary[0] and "HD95 mm" in summary[0]
    assert not list(out.parent.glob(".*tmp*"))  # no temporary file left behind


def test_cli_refuses_to_test_on_training_patients(trained_run, tmp_path, capsys):
    r = trained_run
    split = json.loads(r["split"].read_text())
    leaked = split["train_labelled"][0]
    split["test"] = [leaked, *split["test"]]
    (tmp_path / "leaky.json").write_text(json.dumps(split))
    code = main(["--checkpoint", str(r["checkpoint"]), "--cache", str(r["cache"]),
                 "--split", str(tmp_path / "leaky.json"), "--out", str(tmp_path / "x.csv"), "--device", "cpu"])
    assert code == 2
    assert leaked in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_a_pixel_only_case_gets_pixel_metrics_and_nan_millimetres():
    case = block_case((4, IMG_SIZE, IMG_SIZE))
    pixel_only = Case(case.case_id, case.patient_id, case.phase, case.image, case.label, (float("nan"),) * 3)
    shifted = np.roll(case.label, 3, axis=2)  # a prediction off by 3 columns

    class Fixed(nn.Module):
        num_classes = 2
        evaluated_network = "student"

        def predictor(self):
            return ShiftNet()

    class ShiftNet(nn.Module):
        def forward(self, x):
            y = torch.roll((x > 0.5).float(), 3, dims=-1)
            return NetOutput(torch.cat([1 - y, y], 1), x, x)

    run_cfg = {**RUN_CFG, "data": {**RUN_CFG["data"], "img_size": IMG_SIZE}}
    df = evaluate_method(Fixed(), run_cfg, [pixel_only], ["LV"], labelled_cases=1)
    expected = case_metrics(shifted, case.label, (1.0, 1.0, 1.0), ["LV"])[0]
    row = df.iloc[0]
    assert np.isnan(row["hd95_mm"]) and np.isnan(row["asd_mm"])
    assert row["hd95_px"] == pytest.approx(expected["hd95_px"]) and row["hd95_px"] == pytest.approx(3.0)
    assert row["dice"] == pytest.approx(expected["dice"])
