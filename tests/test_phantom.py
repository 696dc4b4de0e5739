"""Synthetic cardiac phantom: determinism, ACDC format, anatomy and image sanity."""

import hashlib

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from methods.data import acdc
from methods.data import phantom as phantom_module
from methods.data.cache import CachedDataset
from methods.data.normalise import normalise_volume
from methods.data.phantom import GROUPS, TINY_OPTIONS, PhantomOptions, draw_patient, generate_phantom, render_patient

from conftest import TINY_PHANTOM_PATIENTS, TINY_PHANTOM_SEED


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bit_for_bit_from_the_seed(tmp_path):
    first = tree_digest(generate_phantom(tmp_path / "a", 2, seed=3, options=TINY_OPTIONS))
    again = tree_digest(generate_phantom(tmp_path / "b", 2, seed=3, options=TINY_OPTIONS))
    assert first == again and len(first) == 1 + 2 * 5  # phantom.json + per patient Info.cfg and 4 NIfTI
    other_seed = tree_digest(generate_phantom(tmp_path / "c", 2, seed=4, options=TINY_OPTIONS))
    assert other_seed["training/patient001/Info.cfg"] != first["training/patient001/Info.cfg"] or \
        other_seed["training/patient001/patient001_frame01.nii.gz"] != first["training/patient001/patient001_frame01.nii.gz"]
    # a patient does not depend on how many patients are generated
    one = tree_digest(generate_phantom(tmp_path / "d", 1, seed=3, options=TINY_OPTIONS))
    assert all(one[name] == first[name] for name in one if name.startswith("training/"))


def test_acdc_reader_reads_the_tree(tiny_phantom_root):
    cases = list(acdc.iter_cases(tiny_phantom_root))
    assert len(cases) == 2 * TINY_PHANTOM_PATIENTS
    for case in cases:
        params = draw_patient(TINY_PHANTOM_SEED, int(case.patient_id[-3:]), TINY_OPTIONS)
        assert case.image.shape == params.shape
        assert case.spacing == params.spacing
        assert case.meta["group"] == params.group and case.meta["subset"] == "training"
        assert case.meta["frame"] == (params.ed_frame if case.phase == "ED" else params.es_frame)
        assert set(np.unique(case.label)) == {0, 1, 2, 3} if case.phase == "ED" else {0, 2, 3} <= set(np.unique(case.label))


def test_cache_holds_what_the_acdc_reader_reads(tiny_phantom_root, tiny_cache):
    cache = CachedDataset(tiny_cache)
    case = next(acdc.iter_cases(tiny_phantom_root, patients=["patient002"]))
    cached = cache.load(case.case_id)
    np.testing.assert_array_equal(cached.label, case.label)
    np.testing.assert_array_equal(cached.image, normalise_volume(case.image))
    assert cache.source_root == str(tiny_phantom_root.resolve())


def test_nifti_header_and_info(tiny_phantom_root):
    folder = tiny_phantom_root / "training" / "patient003"
    params = draw_patient(TINY_PHANTOM_SEED, 3, TINY_OPTIONS)
    info = dict(line.split(": ") for line in (folder / "Info.cfg").read_text().splitlines())
    assert info["ED"] == "1" and int(info["ES"]) == params.es_frame and info["Group"] in GROUPS
    image = nib.load(folder / f"patient003_frame{params.es_frame:02d}.nii.gz")
    assert image.shape == params.shape[::-1]  # nibabel order (x, y, z)
    np.testing.assert_allclose(image.header.get_zooms(), params.spacing[::-1])
    np.testing.assert_allclose(np.linalg.norm(image.affine[:3, :3], axis=0), params.spacing[::-1], rtol=1e-5)
    assert np.count_nonzero(np.abs(image.affine[:3, :3]) > 1e-3) > 3  # oblique, not axis-aligned
    assert image.get_data_dtype() == np.int16
    assert nib.load(folder / f"patient003_frame{params.es_frame:02d}_gt.nii.gz").get_data_dtype() == np.uint8


def test_acquisition_varies_between_patients():
    options = PhantomOptions()
    patients = [draw_patient(0, index, options) for index in range(1, 21)]
    slices = {p.shape[0] for p in patients}
    assert len(slices) >= 3 and min(slices) >= 6 and max(slices) <= 12
    assert len({p.shape[1:] for p in patients}) > 10
    assert all(1.3 <= p.spacing[1] == p.spacing[2] <= 1.75 and 8.0 <= p.spacing[0] <= 10.5 for p in patients)
    assert [p.group for p in patients[:5]] == list(GROUPS)


@pytest.fixture(scope="module")
def full_size_frames():
    """One full-size patient per pathology group (default options)."""
    return [(draw_patient(11, index), render_patient(draw_patient(11, index))) for index in range(1, 6)]


def volume_ml(label, value, spacing):
    return np.count_nonzero(label == value) * np.prod(spacing) / 1000


def test_anatomy_volumes_and_contraction(full_size_frames):
    for params, frames in full_size_frames:
        (_, ed), (_, es) = frames["ED"], frames["ES"]
        lv_ed, lv_es = volume_ml(ed, 3, params.spacing), volume_ml(es, 3, params.spacing)
        myo_ed, myo_es = volume_ml(ed, 2, params.spacing), volume_ml(es, 2, params.spacing)
        assert 30 < lv_ed < 500, (params.group, lv_ed)
        assert lv_es < 0.9 * lv_ed, (params.group, lv_es, lv_ed)
        assert 0.7 < myo_es / myo_ed < 1.4  # the wall thickens but keeps its volume
        assert volume_ml(es, 1, params.spacing) < volume_ml(ed, 1, params.spacing)
        # base to apex: the LV cavity shrinks, the RV is gone before the last slice
        areas = [(ed[k] == 3).sum() for k in range(ed.shape[0])]
        assert areas[-1] < areas[len(areas) // 2] < areas[0] * 1.05
        assert (ed[-1] == 1).sum() == 0 and (ed[0] == 1).sum() > 0
    lv_ed_by_group = {p.group: volume_ml(f["ED"][1], 3, p.spacing) for p, f in full_size_frames}
    assert lv_ed_by_group["DCM"] > 1.5 * lv_ed_by_group["HCM"]


def test_myocardial_thickening(full_size_frames):
    """At ES the mid-ventricular wall is thicker: area / circumference of the MYO ring grows."""
    for params, frames in full_size_frames:
        k = params.shape[0] // 2
        thickness = {}
        for phase in ("ED", "ES"):
            ring = frames[phase][1][k] == 2
            boundary = ring & ~ndimage.binary_erosion(ring)
            thickness[phase] = 2 * ring.sum() / boundary.sum()
        # wall thickening ~ (ED/ES cavity radius ratio): strong in NOR, HCM and RV, weak in DCM
        # (low ejection fraction) and MINF (the infarcted sector does not thicken)
        minimum = 1.05 if params.group in ("DCM", "MINF") else 1.2
        assert thickness["ES"] > minimum * thickness["ED"], (params.group, thickness)


def test_blood_pools_equally_bright_and_myocardium_dark(full_size_frames):
    for params, frames in full_size_frames:
        image, label = frames["ED"]
        # `core` runs only within this iteration, so it reads this frame's `label` (B023)
        core = lambda value: ndimage.binary_erosion(label == value, np.ones((1, 3, 3)), iterations=2)  # noqa: E731, B023 in-plane
        lv, rv = np.median(image[core(3)]), np.median(image[core(1)])
        assert 0.8 < lv / rv < 1.25, (params.group, lv, rv)
        assert np.median(image[label == 2]) < 0.6 * rv
        # the myocardium is close to the chest-wall / liver tissue drawn around it
        assert abs(params.intensity[phantom_module.MYO] - params.intensity[phantom_module.SOFT]) < 0.2 * params.intensity[phantom_module.LV_BLOOD]


def test_refuses_a_used_folder_and_cleans_up_on_failure(tmp_path, monkeypatch):
    used = tmp_path / "used"
    used.mkdir()
    (used / "file").write_text("x")
    with pytest.raises(FileExistsError, match="used"):
        generate_phantom(used, 1, options=TINY_OPTIONS)

    calls = []

    def failing_write(folder, params, options):
        calls.append(params.patient_id)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(folder, params, options)

    original = phantom_module.write_patient
    monkeypatch.setattr(phantom_module, "write_patient", failing_write)
    with pytest.raises(OSError, match="disk full"):
        generate_phantom(tmp_path / "new", 3, options=TINY_OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]


def test_figure_is_written(tmp_path):
    path = phantom_module.save_figure(tmp_path / "fig.png", n_patients=1, options=TINY_OPTIONS)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
