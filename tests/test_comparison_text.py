"""analysis.comparison's plain-language sentences: who holds the best mean rank, ties named."""

import pandas as pd

from analysis.comparison import best_rank_text


def test_a_single_best_mean_rank_is_named():
    assert best_rank_text(pd.Series({"spcl": 2.5, "bus": 1.5, "bass": 2.0})) == "the best mean rank is BUS's (1.5000)"


def test_a_tied_best_mean_rank_names_every_method_holding_it():
    # two blocks, three methods: BUS ranks 1 then 2, SPCL 2 then 1 -> both 1.5, BASS 3
    ranks = pd.Series({"spcl": 1.5, "bus": 1.5, "bass": 3.0})
    assert best_rank_text(ranks) == "the best mean rank, 1.5000, is shared by SPCL and BUS"
    three = pd.Series({"spcl": 2.0, "bus": 2.0, "bass": 2.0})
    assert best_rank_text(three) == "the best mean rank, 2.0000, is shared by SPCL, BUS and BASS"
