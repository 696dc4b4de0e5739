"""The paper's plan beyond the main comparison, as data: which (method, variant) runs make Table 3,
Table 4, the BCL-vs-InfoNCE comparison, Fig. 3 and Fig. 7, the orders the paper claims among them,
and the names of the threshold-sweep runs of Fig. 5.

Paper: J. Zhao, X. Yang, "Intra-class subdivision for pixel contrastive learning: application to
semi-supervised cardiac image segmentation", ICASSP 2026 (Tables 3 and 4, Sec. 3.3, Figs. 3, 5, 7).
The variants are SPCL's (spcl/method.py `SPCL_VARIANTS`); `default` is the run of the main
comparison. The workflow trains these runs (workflow/rules/common.smk), the analysis tabulates,
draws and checks them (analysis/tables.py, figure_inputs.py, paper_claims.py, synthetic.py); all
of them read this module. Plain data and the standard library: it loads without torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Run = tuple[str, str]  # (method, variant)

SUPONLY: Run = ("suponly", "default")
SPCL: Run = ("spcl", "default")
SUP_UNSUP: Run = ("spcl", "sup_unsup")
ICL_ONLY: Run = ("spcl", "icl_only")
BCL_ONLY: Run = ("spcl", "bcl_only")
RELATION_NEG: Run = ("spcl", "relation_neg")
RELATION_POS: Run = ("spcl", "relation_pos")
BCL_INFONCE: Run = ("spcl", "bcl_infonce")


@dataclass(frozen=True)
class Row:
    """One row of a table, or one panel of a figure, as the paper labels it."""

    label: str
    run: Run
    losses: tuple[str, ...] = ()  # Table 3: the loss terms the row trains with

    @property
    def method(self) -> str:
        return self.run[0]

    @property
    def variant(self) -> str:
        return self.run[1]


#: Table 3, loss ablation, top to bottom, and its loss columns
TABLE3_LOSSES = ("L_sup", "L_unsup", "L_icl", "L_bcl", "L_spcl")
TABLE3 = (
    Row("L_sup", SUPONLY, ("L_sup",)),
    Row("+ L_unsup", SUP_UNSUP, ("L_sup", "L_unsup")),
    Row("+ L_unsup + L_icl", ICL_ONLY, ("L_sup", "L_unsup", "L_icl")),
    Row("+ L_unsup + L_bcl", BCL_ONLY, ("L_sup", "L_unsup", "L_bcl")),
    Row("+ L_unsup + L_spcl", SPCL, ("L_sup", "L_unsup", "L_spcl")),
)
#: Table 4, the relation between inner and boundary subclasses (US: unconcerned samples, SPCL's own)
TABLE4 = (Row("Neg", RELATION_NEG), Row("Pos", RELATION_POS), Row("US", SPCL))
#: Sec. 3.3: BCL against InfoNCE as the boundary contrastive loss
BCL_VS_INFONCE = (Row("BCL", SPCL), Row("InfoNCE", BCL_INFONCE))
#: Fig. 3: anchor-to-bank similarities with and without the unconcerned samples (similarities.npz)
FIG3 = (Row("with US", SPCL), Row("without US", RELATION_POS))
#: Fig. 7: t-SNE of the feature space under the three relations of Table 4
FIG7 = TABLE4

#: the ablation runs the workflow trains, by the switch of its `ablations` config section
ABLATIONS = {"table3": TABLE3, "table4": TABLE4, "bcl_vs_infonce": BCL_VS_INFONCE}

#: the orders the paper reports, as (worse, better) pairs: Table 3 L_sup < + L_unsup < + L_icl or
#: + L_bcl < SPCL; Table 4 Neg < Pos < US; BCL beats InfoNCE
TABLE3_ORDER = ((SUPONLY, SUP_UNSUP), (SUP_UNSUP, ICL_ONLY), (SUP_UNSUP, BCL_ONLY), (ICL_ONLY, SPCL), (BCL_ONLY, SPCL))
TABLE4_ORDER = ((RELATION_NEG, RELATION_POS), (RELATION_POS, SPCL))
BCL_ORDER = ((BCL_INFONCE, SPCL),)


def ablation_runs() -> dict[str, list[Run]]:
    """{ablation switch: its runs in table order}."""
    return {name: [row.run for row in rows] for name, rows in ABLATIONS.items()}


def own_variants(rows: tuple[Row, ...]) -> tuple[str, ...]:
    """The SPCL variants only these rows train (not the main comparison's `default`)."""
    return tuple(row.variant for row in rows if row.method == "spcl" and row.variant != "default")


def ablation_variants() -> tuple[Run, ...]:
    """Every ablation run outside the main comparison, once, in table order."""
    return tuple(dict.fromkeys(row.run for rows in ABLATIONS.values() for row in rows if row.variant != "default"))


# --- Fig. 5: the threshold sweep -----------------------------------------------------------------
#: SPCL's (gamma_s, gamma_t) in the paper (Sec. 2.2), the cell the sweep is expected to peak at
PAPER_THRESHOLDS = (0.75, 0.95)
_NUMBER = r"[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?"  # what Python's `:g` writes for a threshold
#: a sweep variant's name, with the thresholds as named groups `gs` and `gt`
SWEEP_VARIANT = re.compile(rf"^sweep_gs(?P<gs>{_NUMBER})_gt(?P<gt>{_NUMBER})$")


def sweep_variant(gamma_s: float, gamma_t: float) -> str:
    """The variant name of the sweep run at (gamma_s, gamma_t), e.g. `sweep_gs0.75_gt0.95`."""
    return f"sweep_gs{float(gamma_s):g}_gt{float(gamma_t):g}"


def sweep_thresholds(variant: str) -> tuple[float, float] | None:
    """(gamma_s, gamma_t) of a sweep variant name; None for any other variant."""
    match = SWEEP_VARIANT.match(variant)
    return (float(match["gs"]), float(match["gt"])) if match else None
