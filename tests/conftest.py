"""Shared fixtures: every random test draws from a fixed, explicit seed."""

import numpy as np
import pytest

SEED = 20261121


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(SEED)


@pytest.fixture
def seed() -> int:
    return SEED
