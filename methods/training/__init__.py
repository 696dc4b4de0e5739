"""Training: the engine (`engine`: loop, optimiser, schedule, precision, logging), checkpoints
(`checkpoint`), which weights `final.pt` keeps (`selection`), the pseudo-label diagnostics in
`log.csv` (`pseudo_label_logs`), the run's provenance (`provenance`) and the supervised warm start
(`warm_start`). The CLI is `python -m methods.train` (methods/train.py)."""
