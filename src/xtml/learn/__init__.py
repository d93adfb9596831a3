"""Machine learning with best practice: features, estimators, protocol, metrics (work in progress).

Public names are re-exported here once the submodules settle; import from the submodules meanwhile.
"""
