"""Evaluation: the metrics (`metrics`), inference and the per-case results of a trained run
(`evaluate`), and what a network's confident pixels would teach (`pseudo_labels`). The CLIs stay
`python -m methods.evaluate` and `python -m methods.pseudo_labels` (thin modules beside this
package), the names the workflow's rules and the docs use."""
