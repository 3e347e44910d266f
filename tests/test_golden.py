"""Every weight-free metric on the fixed synthetic set against its reviewed golden values."""

from __future__ import annotations

import json
import math

import pytest

from tests.golden.make_golden import GOLDEN, compute

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def computed():
    return compute()


def test_golden_covers_every_registered_metric(computed):
    values, provenance = computed
    assert provenance["flow_backend"] == "dis"
    for clip, scores in EXPECTED["values"].items():
        assert set(scores) == set(values[clip]), clip


@pytest.mark.parametrize("clip", sorted(EXPECTED["values"]))
def test_golden_values(computed, clip):
    values, _ = computed
    for metric, expected in EXPECTED["values"][clip].items():
        got = values[clip][metric]
        if expected is None:
            assert math.isnan(got), (clip, metric, got)
        else:
            assert got == pytest.approx(expected, rel=EXPECTED["rtol"], abs=EXPECTED["atol"]), (
                clip,
                metric,
            )
