"""One opener of a run's inputs (methods/data/loaders.py `open_run_inputs`): training, evaluation
and the pseudo-label diagnostic of a `label_centred` run feed the network the same window."""

import pytest
import torch

import methods.data.loaders as loaders
import methods.evaluation.evaluate as evaluate
from methods.data.region.label_centred import LabelCentredRegion
from methods.training.engine import Trainer, train
from methods.evaluation.pseudo_labels import main as pseudo_labels_main
from methods.runconfig import parse_run_config
from _tiny_run import TINY_NET


@pytest.fixture(scope="module")
def label_centred_run(tiny_cache, tiny_split, tmp_path_factory):
    out = tmp_path_factory.mktemp("label_centred") / "run"
    cfg = parse_run_config({
        "method": "suponly", "seed": 0, "out_dir": str(out),
        "data": {"cache": str(tiny_cache), "split": str(tiny_split), "dataset": "phantom", "ratio": 5,
                 "img_size": 32, "labelled_batch": 2, "unlabelled_batch": 0,
                 "region": "label_centred", "crop_px": 32},
        "network": TINY_NET,
        "train": {"iterations": 1, "device": "cpu", "amp": "off", "progress": False, "checkpoint_every": 1000},
    })
    train(cfg)
    return cfg, out / "final.pt"


def test_training_evaluation_and_pseudo_labels_see_the_same_window(label_centred_run, tiny_cache, tiny_split,
                                                                   monkeypatch, capsys):
    cfg, final = label_centred_run
    trainer = Trainer(cfg)
    trained = trainer.data.labelled.images  # what the network was trained on
    assert isinstance(trainer.region, LabelCentredRegion)
    assert trainer.region.class_names == ("RV", "MYO", "LV")  # the LV-first rule, not the foreground centroid
    case_ids = loaders.cases_of_role(trainer.data.cache, loaders.read_split(tiny_split), "train_labelled")
    cases = [trainer.data.cache.load(c) for c in case_ids]
    # the rule differs from the foreground centroid on these cases, so a region without the names would crop elsewhere
    no_names = LabelCentredRegion(trainer.region.spec)
    assert any((no_names.training_centre(c) != trainer.region.training_centre(c)).any() for c in cases)

    seen = {}
    real_evaluate_method, real_load_slices = evaluate.evaluate_method, loaders.load_slices

    def spy_evaluate_method(*args, region=None, **kwargs):
        seen["evaluation"] = region
        return real_evaluate_method(*args, region=region, **kwargs)

    def spy_load_slices(cache, ids, region, with_labels=True):
        slices = real_load_slices(cache, ids, region, with_labels)
        seen["pseudo_labels"] = slices.images
        return slices

    monkeypatch.setattr(evaluate, "evaluate_method", spy_evaluate_method)
    df = evaluate.evaluate_checkpoint(final, tiny_cache, tiny_split, role="train_labelled", device="cpu")
    region = seen["evaluation"]
    evaluated = torch.cat([region.images(c.image, c.spacing, region.evaluation_centre(c)) for c in cases])
    assert torch.equal(evaluated, trained)
    centres = {c.case_id: trainer.region.describe_centre(trainer.region.training_centre(c)) for c in cases}
    assert dict(zip(df["case_id"], df["region_centre"])) == centres

    monkeypatch.setattr(loaders, "load_slices", spy_load_slices)
    assert pseudo_labels_main(["--checkpoint", str(final), "--cache", str(tiny_cache), "--split", str(tiny_split),
                               "--role", "train_labelled", "--network", "student"]) == 0
    capsys.readouterr()
    assert torch.equal(seen["pseudo_labels"], trained)
