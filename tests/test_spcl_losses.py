"""ICL (Eq. 2) and BCL (Eq. 4) on hand-sized vectors, their gradients, the relations' mask algebra."""

import math

import pytest
import torch

from spcl.losses import (
    ContrastLogits,
    MaskedExpSum,
    anchor_mean,
    balanced_to_infonce,
    boundary_contrastive,
    contrast_logits,
    info_nce,
)
from spcl.relations import dense_masks, subclass_relation

# Two classes -> subclasses 0 (c0 inner), 1 (c0 boundary), 2 (c1 inner), 3 (c1 boundary); 2 slots each.
BANK = torch.tensor(
    [
        [[1.0, 0.0], [0.0, 1.0]],  # c0 inner
        [[0.6, 0.8], [0.0, 0.0]],  # c0 boundary (slot 1 empty)
        [[-1.0, 0.0], [0.0, 0.0]],  # c1 inner (slot 1 empty)
        [[0.0, -1.0], [0.0, 0.0]],  # c1 boundary (slot 1 empty)
    ]
)
VALID = torch.tensor([[True, True], [True, False], [True, False], [True, False]])


def terms_for(anchor, group, relation="unconcerned", tau=0.5, bank=BANK, valid=VALID):
    rel = subclass_relation(relation, 2)
    return contrast_logits(torch.tensor(anchor).view(1, 1, 2), torch.tensor([group]), bank, valid, rel, tau)


def nce(pos, negs, tau):
    """-log(e^{p/tau} / (e^{p/tau} + sum e^{n/tau})) by hand."""
    return -math.log(math.exp(pos / tau) / (math.exp(pos / tau) + sum(math.exp(n / tau) for n in negs)))


# ---- the relations --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "relation, positive, negative",
    [
        # anchor subclass rows 0..3 (c0 I, c0 B, c1 I, c1 B) x bank subclass columns
        ("unconcerned", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                        [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]),
        ("positive", [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]],
                     [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]),
        ("negative", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
                     [[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]]),
    ],
)
def test_relation_masks(relation, positive, negative):
    rel = subclass_relation(relation, 2)
    assert rel.positive.tolist() == [[bool(v) for v in row] for row in positive]
    assert rel.negative.tolist() == [[bool(v) for v in row] for row in negative]
    assert not (rel.positive & rel.negative).any()
    unconcerned = ~(rel.positive | rel.negative)
    assert unconcerned.sum().item() == (4 if relation == "unconcerned" else 0)  # one sibling per subclass


def test_dense_masks_drop_empty_slots():
    rel = subclass_relation("unconcerned", 2)
    entry_groups = torch.arange(4).repeat_interleave(2)
    pos, neg = dense_masks(rel, torch.tensor([0, 3]), entry_groups, VALID.flatten())
    assert pos.tolist() == [[True, True, False, False, False, False, False, False],
                            [False, False, False, False, False, False, True, False]]
    assert neg.tolist() == [[False, False, False, False, True, False, True, False],
                            [True, True, True, False, False, False, False, False]]


def test_unknown_relation_is_an_error():
    with pytest.raises(ValueError, match="relation must be one of"):
        subclass_relation("maybe", 2)


# ---- ICL by hand -----------------------------------------------------------------------------------
def test_icl_hand_computed_for_the_three_relations():
    # inner anchor (1, 0) of class 0: similarities 1, 0 (own inner), 0.6 (own boundary), -1, 0 (class 1)
    us = info_nce(terms_for([1.0, 0.0], 0, "unconcerned")).item()
    assert us == pytest.approx((nce(1.0, [-1.0, 0.0], 0.5) + nce(0.0, [-1.0, 0.0], 0.5)) / 2, rel=1e-6)
    pos = info_nce(terms_for([1.0, 0.0], 0, "positive")).item()
    assert pos == pytest.approx((nce(1.0, [-1, 0], 0.5) + nce(0.0, [-1, 0], 0.5) + nce(0.6, [-1, 0], 0.5)) / 3, rel=1e-6)
    neg = info_nce(terms_for([1.0, 0.0], 0, "negative")).item()
    assert neg == pytest.approx((nce(1.0, [-1, 0, 0.6], 0.5) + nce(0.0, [-1, 0, 0.6], 0.5)) / 2, rel=1e-6)


def test_unconcerned_entries_change_neither_icl_term():
    bank = BANK.clone().requires_grad_(True)
    terms = terms_for([1.0, 0.0], 0, "unconcerned", bank=bank)
    info_nce(terms).sum().backward()
    assert torch.equal(bank.grad[1], torch.zeros(2, 2))  # the unconcerned queue gets no gradient
    other = BANK.clone()
    other[1, 0] = torch.tensor([1.0, 0.0])  # move the unconcerned entry onto the anchor
    moved = terms_for([1.0, 0.0], 0, "unconcerned", bank=other)
    assert torch.equal(moved.pos_logits, terms.pos_logits.detach())
    assert torch.equal(moved.sr_neg, terms.sr_neg.detach())


def test_scaled_icl_is_the_official_supcon_factor():
    t = terms_for([1.0, 0.0], 0)
    assert (0.5 / 0.07 * info_nce(t)).item() == pytest.approx(7.142857 * info_nce(t).item(), rel=1e-6)


# ---- BCL by hand -----------------------------------------------------------------------------------
def bcl_by_hand(pos, negs, tau):
    sr_pos = sum(math.exp(-p / tau) for p in pos)
    sr_neg = sum(math.exp(n / tau) for n in negs)
    return math.log(1 + sr_pos * sr_neg)


@pytest.mark.parametrize("tau", [1.0, 0.07])
def test_bcl_hand_computed(tau):
    # boundary anchor (0, 1) of class 0: own boundary 0.8 (positive), own inner 0 and 1 (unconcerned),
    # class 1: inner 0, boundary -1 (negatives)
    got = boundary_contrastive(terms_for([0.0, 1.0], 1, "unconcerned", tau=tau)).item()
    assert got == pytest.approx(bcl_by_hand([0.8], [0.0, -1.0], tau), rel=1e-5)
    got_pos = boundary_contrastive(terms_for([0.0, 1.0], 1, "positive", tau=tau)).item()
    assert got_pos == pytest.approx(bcl_by_hand([0.8, 0.0, 1.0], [0.0, -1.0], tau), rel=1e-5)


def test_bcl_gradients_match_the_paper_closed_forms():
    s_pos = torch.tensor([0.3, -0.2, 0.9], requires_grad=True)
    s_neg = torch.tensor([0.1, 0.5, -0.7, 0.2], requires_grad=True)
    terms = ContrastLogits(s_pos[None], torch.ones(1, 3, dtype=torch.bool), torch.exp(s_neg).sum()[None], 1.0)
    boundary_contrastive(terms).sum().backward()
    sr_pos, sr_neg = torch.exp(-s_pos).sum(), torch.exp(s_neg).sum()
    denom = 1 + sr_pos * sr_neg
    expected_pos = -sr_neg * torch.exp(-s_pos) / denom  # dL/dY+ = -sr- e^{-Y+} / (1 + sr+ sr-)
    expected_neg = sr_pos * torch.exp(s_neg) / denom  # dL/dY- = sr+ e^{Y-} / (1 + sr+ sr-)
    assert torch.allclose(s_pos.grad, expected_pos.detach(), atol=1e-6)
    assert torch.allclose(s_neg.grad, expected_neg.detach(), atol=1e-6)


# ---- degenerate inputs -----------------------------------------------------------------------------
def test_no_negatives_and_no_positives_give_zero_with_finite_gradients():
    only_own = VALID.clone()
    only_own[2:] = False  # class 1 queues empty: no negatives for class 0 anchors
    anchor = torch.tensor([1.0, 0.0]).view(1, 1, 2).requires_grad_(True)
    rel = subclass_relation("unconcerned", 2)
    t = contrast_logits(anchor, torch.tensor([0]), BANK, only_own, rel, 0.07)
    loss = info_nce(t).sum() + boundary_contrastive(t).sum()
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(anchor.grad).all()
    empty = torch.zeros_like(VALID)
    t = contrast_logits(anchor, torch.tensor([0]), BANK, empty, rel, 0.5)
    assert not t.has_positive.any()
    per_anchor = info_nce(t)
    total, _ = anchor_mean(per_anchor, t.has_positive, 1, class_balanced=False)
    assert total.item() == 0.0 and torch.isfinite(per_anchor).all()


# ---- the fused formulation equals the plain masked one ---------------------------------------------
def dense_reference(anchors, groups, bank, valid, relation, tau):
    """Eq. 2 / Eq. 4 from explicit [A, M] masks, one anchor at a time."""
    rel = subclass_relation(relation, bank.shape[0] // 2)
    entries = bank.reshape(-1, bank.shape[-1])
    entry_groups = torch.arange(bank.shape[0]).repeat_interleave(bank.shape[1])
    icl, bcl = [], []
    for a, g in zip(anchors.reshape(-1, anchors.shape[-1]), groups.repeat_interleave(anchors.shape[1])):
        pos, neg = dense_masks(rel, g.view(1), entry_groups, valid.flatten())
        sim = entries @ a / tau
        neg_sum = torch.exp(sim[neg[0]]).sum()
        p = sim[pos[0]]
        icl.append(torch.stack([-torch.log(torch.exp(x) / (torch.exp(x) + neg_sum)) for x in p]).mean() if len(p) else torch.tensor(0.0))
        bcl.append(torch.log(1 + torch.exp(-p).sum() * neg_sum))
    return torch.stack(icl), torch.stack(bcl)


@pytest.mark.parametrize("relation", ["unconcerned", "positive", "negative"])
@pytest.mark.parametrize("tau", [0.5, 0.07])
def test_fused_contrast_equals_the_dense_masked_reference(relation, tau):
    g = torch.Generator().manual_seed(3)
    bank = torch.nn.functional.normalize(torch.randn(6, 5, 4, generator=g), dim=-1)
    valid = torch.rand(6, 5, generator=g) > 0.3
    valid[2] = False  # one subclass entirely empty
    anchors = torch.nn.functional.normalize(torch.randn(3, 2, 4, generator=g), dim=-1).requires_grad_(True)
    groups = torch.tensor([0, 3, 5])
    t = contrast_logits(anchors, groups, bank, valid, subclass_relation(relation, 3), tau)
    ref_icl, ref_bcl = dense_reference(anchors, groups, bank, valid, relation, tau)
    assert torch.allclose(info_nce(t), ref_icl, rtol=1e-5, atol=1e-6)
    assert torch.allclose(boundary_contrastive(t), ref_bcl, rtol=1e-5, atol=1e-6)
    weights = torch.arange(1.0, 7.0)  # distinct weights per anchor: gradients of a weighted sum
    grad, = torch.autograd.grad((weights * (info_nce(t) + boundary_contrastive(t))).sum(), anchors)
    ref_grad, = torch.autograd.grad((weights * (ref_icl + ref_bcl)).sum(), anchors)
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-5)
    other = t.at_temperature(0.3)  # re-reading the same similarities at another temperature
    ref_icl, ref_bcl = dense_reference(anchors, groups, bank, valid, relation, 0.3)
    assert torch.allclose(info_nce(other), ref_icl, rtol=1e-4, atol=1e-6)


def test_masked_exp_sum_gradient():
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 5) > 0.4).double()
    assert torch.autograd.gradcheck(lambda v: MaskedExpSum.apply(v, mask)[0], (x,))
    total, weights = MaskedExpSum.apply(x, mask)
    assert torch.allclose(total, (mask * x.exp()).sum(-1)) and not weights.requires_grad


# ---- averaging and the official balancing ------------------------------------------------------------
def test_anchor_mean_paper_and_class_balanced():
    per_anchor = torch.tensor([1.0, 3.0, 10.0, 0.0])  # 2 classes x 2 anchor slots
    counted = torch.tensor([True, True, True, False])
    paper, per_class = anchor_mean(per_anchor, counted, 2, class_balanced=False)
    assert paper.item() == pytest.approx((1 + 3 + 10) / 3)
    assert per_class.tolist() == [2.0, 10.0]
    balanced, _ = anchor_mean(per_anchor, counted, 2, class_balanced=True)
    assert balanced.item() == pytest.approx((2 + 10) / 2)


def test_official_balancing_takes_the_nce_value_and_keeps_the_bcl_gradient():
    bcl = torch.tensor([1.0, 3.0, 0.5, 0.5], requires_grad=True)
    nce = torch.tensor([4.0, 4.0, 6.0, 2.0])
    counted = torch.ones(4, dtype=torch.bool)
    scaled = balanced_to_infonce(bcl, nce, counted, 2)
    assert scaled.view(2, 2).mean(1).tolist() == pytest.approx([4.0, 4.0])
    scaled.sum().backward()
    assert bcl.grad.tolist() == pytest.approx([2.0, 2.0, 8.0, 8.0])  # ratios nce/bcl per class: 4/2, 4/0.5
