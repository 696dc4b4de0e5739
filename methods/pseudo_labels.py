"""`python -m methods.pseudo_labels --checkpoint RUN/final.pt ...`. The code is
methods/evaluation/pseudo_labels.py; this module keeps the command's name."""

import sys

from methods.evaluation.pseudo_labels import main

if __name__ == "__main__":
    sys.exit(main())
