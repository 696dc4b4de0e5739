"""SPCL: intra-class subdivision pixel contrastive learning (Zhao & Yang, ICASSP 2026).

Registered methods `spcl` and `spcl_official` live in `spcl.method`; the parts are `boundaries`
(subclass division), `relations` (positives / negatives / unconcerned), `sampling` (hard, reliable
anchors), `memory` (subclass FIFO banks), `losses` (ICL, BCL) and `reservoir` (Fig. 3 samples).
See docs/spcl.md.
"""
