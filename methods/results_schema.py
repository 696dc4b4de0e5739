"""The per-case results table: the contract between its writer (`methods.evaluate`) and its
readers (`analysis.collect`, the workflow, docs/architecture.md "Evaluation outputs").

One row per (case, foreground class) of one evaluated run. Columns, in this order:
- `IDENTITY_COLUMNS`: the run (dataset, label ratio in percent, labelled training patients,
  method, variant, seed);
- `case_id`, `class_name`;
- `METRIC_COLUMNS`: Dice and Jaccard as fractions, HD95 in mm and in pixels, ASD in mm
  (methods/evaluation/metrics.py computes them);
- `evaluated_network`, `checkpoint`;
- `PROVENANCE_COLUMNS`: where the network looked and how it was scored (region, crop centre,
  evaluation grid, checkpoint selection, whether the test label placed the input or chose the
  checkpoint, numeric path).

`CASE_COLUMNS` (everything before the provenance) is what a reader requires of a per-case CSV;
`KEY_COLUMNS` identify a row. Plain data, no imports: the analysis and the workflow read it
without loading torch.
"""

IDENTITY_COLUMNS = ("dataset", "ratio", "labelled_cases", "method", "variant", "seed")
METRIC_COLUMNS = ("dice", "jaccard", "hd95_mm", "hd95_px", "asd_mm")
CASE_COLUMNS = (*IDENTITY_COLUMNS, "case_id", "class_name", *METRIC_COLUMNS, "evaluated_network", "checkpoint")
PROVENANCE_COLUMNS = ("region", "region_centre", "evaluation", "selection", "uses_test_label", "precision",
                      "memory_format")
RESULT_COLUMNS = (*CASE_COLUMNS, *PROVENANCE_COLUMNS)
KEY_COLUMNS = ("dataset", "ratio", "method", "variant", "seed", "case_id", "class_name")
