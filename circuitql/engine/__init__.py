"""Running a compiled pattern against a store: plan an anchor, grow neighbourhoods, match
them structurally, fit the coefficients, verify numerically (``search.run``)."""
