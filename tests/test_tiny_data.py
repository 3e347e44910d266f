"""The embedded tiny model's training distribution: seeded, split, and every clip pans."""

from __future__ import annotations

import numpy as np
import pytest

from metrics.base import to_tensor
from metrics.flow import DISFlow, compute_flows
from metrics.synthetic import velocity
from variants.tiny_data import KINDS, clip_params, held_out_set, render_clips


def test_clips_are_determined_by_seed_split_and_index():
    first = render_clips([3, 4], frames=4, size=32)
    assert np.array_equal(first, render_clips([3, 4], frames=4, size=32))
    assert not np.array_equal(first[0], first[1])
    held_out, kinds = held_out_set([3, 4], frames=4, size=32)
    assert kinds == [KINDS[3], KINDS[0]]
    assert clip_params(3)["seed"] != clip_params(3, split="held-out")["seed"]
    assert not np.array_equal(first, held_out)


@pytest.mark.parametrize("index", range(len(KINDS)))
def test_every_kind_moves_with_the_camera_pan(index):
    params = clip_params(index)
    clip = render_clips([index], frames=6, size=64)[0]
    forward = compute_flows(to_tensor(clip), DISFlow()).forward  # [T-1, 2, H, W]
    typical = forward.flatten(2).median(dim=2).values.mean(0).numpy()  # background motion
    expected = velocity(params["speed"], params["direction_deg"])
    assert params["kind"] == KINDS[index]
    assert np.linalg.norm(typical - expected) < 0.5, (typical, expected)
