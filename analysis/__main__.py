"""`python -m analysis ...` runs the whole analysis of a run (see analysis.run)."""

from analysis.run import main

raise SystemExit(main())
