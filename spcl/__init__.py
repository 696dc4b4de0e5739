"""SPCL: intra-class subdivision pixel contrastive learning (Zhao & Yang, ICASSP 2026)."""
