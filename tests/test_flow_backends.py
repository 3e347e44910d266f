"""Flow backends: RAFT input handling (random / fake weights) and weight resolution."""

from __future__ import annotations

import pytest
import torch

from metrics.errors import BenchError, MetricInputError, WeightsNotFoundError
from metrics.flow import RAFTFlow, compute_flows, create_flow_backend, raft_corr_bytes
from metrics.weights import WEIGHTS, resolve


class FakeRAFT(torch.nn.Module):
    """Stands in for RAFT: records its inputs and returns a constant flow (2, 3) px."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[torch.Size, float, float]] = []

    def forward(self, image1, image2, num_flow_updates=12):
        self.seen.append((image1.shape, float(image1.min()), float(image1.max())))
        flow = torch.zeros(image1.shape[0], 2, *image1.shape[-2:])
        flow[:, 0], flow[:, 1] = 2.0, 3.0
        return [flow]


def raft_with(model):
    backend = RAFTFlow("small", allow_random_weights=True, num_flow_updates=2)
    backend.model = model
    return backend


@pytest.mark.parametrize(("height", "width"), [(64, 48), (130, 100), (128, 128), (200, 136)])
def test_raft_inputs_are_scaled_padded_and_flows_rescaled(height, width):
    fake = FakeRAFT()
    frames = torch.rand(3, 3, height, width)
    flows = compute_flows(frames, raft_with(fake), batch_size=8)

    ((shape, low, high),) = fake.seen  # 4 directed pairs in one batch
    assert shape[0] == 4
    assert shape[-2] % 8 == 0 and shape[-1] % 8 == 0
    assert min(shape[-2:]) >= 128
    assert -1.0 <= low < -0.9 and 0.9 < high <= 1.0  # [-1, 1], not [0, 1] or [0, 255]
    assert flows.forward.shape == flows.backward.shape == (2, 2, height, width)
    scale = max(1.0, 128 / min(height, width))
    up_h, up_w = round(height * scale), round(width * scale)
    assert torch.allclose(flows.forward[:, 0], torch.tensor(2.0 * width / up_w))
    assert torch.allclose(flows.forward[:, 1], torch.tensor(3.0 * height / up_h))


def test_raft_random_init_shapes_batching_and_labels():
    backend = RAFTFlow("small", allow_random_weights=True, num_flow_updates=2)
    assert "RANDOM" in backend.weights
    frames = torch.rand(4, 3, 40, 56)
    torch.manual_seed(0)
    batched = compute_flows(frames, backend, batch_size=6)
    one_by_one = compute_flows(frames, backend, batch_size=1)
    assert batched.forward.shape == (3, 2, 40, 56)
    assert torch.isfinite(batched.forward).all()
    torch.testing.assert_close(batched.forward, one_by_one.forward, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(batched.backward, one_by_one.backward, atol=1e-3, rtol=1e-3)


def test_raft_corr_bytes_is_the_pyramid_torchvision_builds():
    from torchvision.models.optical_flow.raft import CorrBlock

    fmap = torch.rand(1, 8, 24, 16)  # features of a 192x128 frame at 1/8 resolution
    block = CorrBlock(num_levels=4, radius=4)
    block.build_pyramid(fmap, fmap)
    built = sum(level.numel() * level.element_size() for level in block.corr_pyramid)
    assert raft_corr_bytes(192, 128) == built
    assert raft_corr_bytes(192, 128, element_size=2) == built // 2


def test_raft_runs_pairs_in_chunks_that_fit_its_budget_with_the_same_flows():
    frames = torch.rand(4, 3, 128, 160)  # 6 directed pairs
    one = raft_corr_bytes(128, 160)
    whole = RAFTFlow("small", allow_random_weights=True, num_flow_updates=2)
    chunked = RAFTFlow("small", allow_random_weights=True, num_flow_updates=2,
                       corr_budget=2 * one + 1)
    calls = []
    chunked.model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    expected = compute_flows(frames, whole, batch_size=6)
    flows = compute_flows(frames, chunked, batch_size=6)
    assert calls == [2, 2, 2]
    torch.testing.assert_close(flows.forward, expected.forward, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flows.backward, expected.backward, atol=1e-4, rtol=1e-4)


def test_raft_refuses_a_pair_whose_correlation_volume_exceeds_free_memory(monkeypatch):
    monkeypatch.setattr("metrics.flow.free_memory", lambda device: 2**19)  # 0.5 MiB free
    backend = RAFTFlow("small", allow_random_weights=True, num_flow_updates=2)
    calls = []
    backend.model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(MetricInputError) as info:
        compute_flows(torch.rand(2, 3, 120, 200), backend)
    # 120x200 runs at 128x213 -> padded 128x216: (16 x 27)^2 cells x 4 B x 85/64 = 0.93 MiB
    assert str(info.value).startswith("200x120 frames: RAFT's correlation volume")
    assert "--flow dis" in str(info.value) and calls == []


def test_raft_without_weights_names_every_place_searched():
    import os

    with pytest.raises(WeightsNotFoundError) as info:
        RAFTFlow("large")
    message = str(info.value)
    assert "\n" not in message
    for needle in (
        "EXSVD_WEIGHTS_RAFT_LARGE",
        os.environ["EXSVD_WEIGHTS_DIR"],
        os.path.join(os.environ["TORCH_HOME"], "hub", "checkpoints"),
        "download and conversion skipped",
        "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        "--flow dis",
    ):
        assert needle in message


def test_auto_falls_back_to_dis_and_says_so():
    backend = create_flow_backend("auto")
    assert backend.name == "dis"
    assert "weight-free" in backend.weights


def test_auto_does_not_fall_back_past_weights_the_user_named(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        create_flow_backend("auto", weights_path=str(tmp_path / "raft.pth"))
    monkeypatch.setenv("EXSVD_WEIGHTS_RAFT_LARGE", str(tmp_path / "typo.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"typo\.pth"):
        create_flow_backend("auto")


def test_raft_random_init_is_the_same_every_time():
    first, second = (RAFTFlow("small", allow_random_weights=True) for _ in range(2))
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unknown_backend_is_a_user_error():
    with pytest.raises(BenchError, match="unknown flow backend"):
        create_flow_backend("farneback")


def _fake_weights(path):
    """A random-init RAFT-small state dict saved to ``path``."""
    from torchvision.models.optical_flow import raft_small

    torch.save(raft_small(weights=None).state_dict(), path)
    return path


def test_resolution_order_and_checksum(tmp_path, monkeypatch):
    spec = WEIGHTS["raft_small"]
    weights_file = _fake_weights(tmp_path / spec.files[0].filename)
    # The file's sha256 does not start with torchvision's prefix: rejected with a clear error.
    monkeypatch.setenv(spec.env_var, str(weights_file))
    with pytest.raises(BenchError, match="checksum mismatch"):
        resolve("raft_small")
    # Accept our file by pretending its prefix is the recorded one; the env var wins.
    from metrics import weights

    digest = weights.sha256_of(weights_file)
    pinned = weights.WeightFile(spec.files[0].filename, digest[:8], spec.files[0].url)
    monkeypatch.setitem(
        weights.WEIGHTS, "raft_small", weights.WeightSpec(**{**spec.__dict__, "files": (pinned,)})
    )
    found = resolve("raft_small")
    assert found.source == f"${spec.env_var}" and found.path == weights_file
    # An explicit path beats the env var; a missing explicit file is an error, not a fallback.
    other = tmp_path / "copy.pth"
    other.write_bytes(weights_file.read_bytes())
    assert resolve("raft_small", other).source == "explicit path"
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve("raft_small", tmp_path / "nope.pth")
    # Without env var, the project weights dir is searched before the torch hub cache.
    monkeypatch.delenv(spec.env_var)
    project_dir = weights.weights_dir()
    project_dir.mkdir(parents=True)
    (project_dir / spec.files[0].filename).write_bytes(weights_file.read_bytes())
    assert resolve("raft_small").source == "project weights dir"
    (project_dir / spec.files[0].filename).unlink()
    hub = spec.library_cache()[0]
    hub.mkdir(parents=True)
    (hub / spec.files[0].filename).write_bytes(weights_file.read_bytes())
    assert resolve("raft_small").source == "library cache"
    # Real RAFT code runs on the resolved (random-valued) file and the label names it.
    backend = RAFTFlow("small", num_flow_updates=1)
    assert spec.files[0].filename in backend.weights and digest[:12] in backend.weights


def test_download_path_used_when_online(tmp_path, monkeypatch):
    from metrics import weights

    monkeypatch.delenv("EXSVD_OFFLINE")
    calls = []

    def fake_download(url, dest):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"not a real checkpoint")

    monkeypatch.setattr(weights, "_download", fake_download)
    with pytest.raises(WeightsNotFoundError, match="failed \\(checksum mismatch"):
        resolve("raft_large")  # a bad download is a failed source: the next one is tried
    assert calls == [WEIGHTS["raft_large"].files[0].url]
    assert not list(weights.weights_dir().iterdir())  # a rejected download leaves nothing

    def failing_download(url, dest):
        raise OSError("Name or service not known")

    monkeypatch.setattr(weights, "_download", failing_download)
    with pytest.raises(WeightsNotFoundError, match="download failed"):
        resolve("raft_large", None)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False),
                                                  ("false", False), ("", False)])
def test_offline_means_what_it_says(value, expected, monkeypatch):
    from metrics.weights import offline

    monkeypatch.setenv("EXSVD_OFFLINE", value)
    assert offline() is expected


def test_a_download_cut_short_is_an_error_not_a_file(tmp_path):
    import http.server
    import threading

    from metrics.weights import _download

    class CutShort(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)  # then the connection closes

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CutShort)
    threading.Thread(target=server.handle_request, daemon=True).start()
    with pytest.raises(OSError, match="incomplete download: 1000 of 100000 bytes"):
        _download(f"http://127.0.0.1:{server.server_port}/w.bin", tmp_path / "w.bin")
    server.server_close()


def test_two_processes_fetching_one_file_do_not_clobber_each_other(tmp_path):
    import threading
    import time

    from metrics.weights import _fetch_into, get_spec

    spec, results = get_spec("clip_vit_b32"), []  # unpinned: any content verifies

    def slow_fetch(part):
        part.write_bytes(b"weights")
        time.sleep(0.2)  # the other fetch runs meanwhile

    def fetch():
        results.append(_fetch_into(tmp_path / "w.bin", slow_fetch, spec, "test").path)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "w.bin"] * 2 and (tmp_path / "w.bin").read_bytes() == b"weights"
