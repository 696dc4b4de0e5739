"""`python -m methods.evaluate --checkpoint RUN/final.pt ...`: the command the workflow's evaluate
rule runs. The code is methods/evaluation/evaluate.py; this module keeps the command's name."""

import sys

from methods.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
