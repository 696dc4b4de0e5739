"""Baselines, one module per method (SupOnly, UGPCL, DGCL, AD-MT, ABD, BUS, BASS).

Each module registers its Method with `@register_method`; modules here are discovered
automatically, so adding a baseline is adding one module (see README, "Add a baseline")."""
