"""``python -m bench perf budget``: the tuned arms timed two ways, equal weights checked (CPU)."""

from __future__ import annotations

import pytest

from bench.__main__ import main
from variants import get_variant, list_variants

ARGS = ["perf", "budget", "--steps", "1", "--frames", "10"]  # past the base length, 8


def rows(out: str) -> dict[str, list[float]]:
    found = {}
    for line in out.splitlines():
        name, *values = line.split()
        if values and all(v.replace(".", "", 1).isdigit() for v in values):
            found[name] = [float(v) for v in values]
    return found


def test_every_tuned_arm_is_timed_both_ways_with_equal_weights(capsys):
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    table = rows(out)
    tuned = [arm for arm in list_variants() if get_variant(arm).post_tuned]
    assert list(table) == [*tuned, "total"]
    assert all(len(times) == 2 and min(times) > 0 for times in table.values())
    for way in (0, 1):
        assert table["total"][way] == pytest.approx(sum(table[a][way] for a in tuned), abs=0.3)
    assert "tuned weights byte-identical" in out
    assert "not judged: the target is for 60 steps" in out  # --steps 1 is not the budget


def test_a_kept_batch_that_is_not_what_encoding_gives_is_caught(capsys, monkeypatch):
    from variants.posttune import EncodedClips

    original = EncodedClips.encode

    def skewed(self, pipeline, config, step, generator):
        clips, rendered = self.clips, []
        self.clips = lambda *args: rendered.append(1) or clips(*args)
        batch = original(self, pipeline, config, step, generator)
        self.clips = clips
        if not rendered:  # served from what an earlier arm encoded
            batch.latents += 0.1
        return batch

    monkeypatch.setattr(EncodedClips, "encode", skewed)
    assert main([*ARGS, "--budget", "full"]) == 1
    assert "tuned weights DIFFER" in capsys.readouterr().out


def test_settings_the_run_would_refuse_are_refused_before_any_work(capsys):
    assert main(["perf", "budget", "--steps", "1", "--frames", "200", "--shared-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "table_size 128 < extended_length 200" in err, err
