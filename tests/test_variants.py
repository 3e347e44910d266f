"""The ExVideo modules on diffusers' SVD UNet: identity at init, positions, trainable sets,
save/load, and the arm registry. Tiny random-init UNet (1.3 M params) on the CPU."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from metrics.registry import UnknownNameError
from variants import ExSVDUNet, Variant, get_variant, list_variants, register_variant, set_trainable
from variants.modules import CyclicSinusoid, PositionTable, svd_sinusoid
from variants.positions import bounce_positions, cyclic_positions

BASE = 8  # the tiny model's base length L
TINY = dict(
    sample_size=8, in_channels=8, out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
    num_attention_heads=(2, 4), addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24, transformer_layers_per_block=1,
)
ARM_OPTIONS = {"base_length": BASE, "table_size": 40, "bounce_low": 2}


@pytest.fixture(scope="module")
def stock() -> UNetSpatioTemporalConditionModel:
    torch.manual_seed(0)
    return UNetSpatioTemporalConditionModel(**TINY).eval()


def denoise(model, frames: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, frames, 8, 8, 8, generator=generator)
    image_embedding = torch.randn(1, 1, 32, generator=generator)
    added_time_ids = torch.tensor([[6.0, 127.0, 0.02]])
    with torch.no_grad():
        return model(sample, torch.tensor([10.0]), image_embedding, added_time_ids).sample


@pytest.mark.parametrize("arm", list_variants())
@pytest.mark.parametrize("frames", [3, BASE])
def test_every_arm_equals_stock_svd_at_init_up_to_the_base_length(stock, arm, frames):
    model = get_variant(arm).build(stock, **ARM_OPTIONS).eval()
    torch.testing.assert_close(denoise(model, frames), denoise(stock, frames), atol=1e-6, rtol=0)


def test_new_modules_are_on_the_forward_path(stock):
    model = get_variant("exsvd").build(stock, **ARM_OPTIONS).eval()
    before = denoise(model, BASE)
    convs = [m for n, m in model.named_modules() if n.endswith("exvideo_convs.0")]
    tables = [m for m in model.modules() if isinstance(m, PositionTable)]
    assert len(convs) == len(tables) == len(model.temporal_transformers()) == 4
    with torch.no_grad():
        convs[0].conv.weight.add_(0.05)
    after_conv = denoise(model, BASE)
    with torch.no_grad():
        tables[-1].table[BASE - 1].add_(1.0)
    after_table = denoise(model, BASE)
    assert (after_conv - before).abs().max() > 1e-3
    assert (after_table - after_conv).abs().max() > 1e-3


def test_positions_the_tables_claim():
    assert bounce_positions(70).tolist()[:27] == [*range(25), 23, 22]
    wave = bounce_positions(200).tolist()[24:]
    assert min(wave) == 4 and max(wave) == 24 and wave[:41] == wave[40:81]  # period 40
    assert cyclic_positions(10, 4).tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert cyclic_positions(10, 4, "triangle").tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    channels = 32
    sinusoid = svd_sinusoid(channels)
    table = PositionTable(channels, size=40, base_length=BASE, low=2)
    torch.testing.assert_close(table.table.data, sinusoid(bounce_positions(40, BASE, 2)))
    index = torch.arange(20)
    torch.testing.assert_close(table(index), sinusoid(bounce_positions(20, BASE, 2)))
    torch.testing.assert_close(CyclicSinusoid(channels, BASE)(index), sinusoid(index % BASE))
    with pytest.raises(ValueError, match="beyond the positional table"):
        table(torch.arange(41))


def test_arms_differ_only_past_the_base_length(stock):
    long = BASE + 6
    stock_long = denoise(stock, long)
    outputs = {arm: denoise(get_variant(arm).build(stock, **ARM_OPTIONS).eval(), long)
               for arm in ("svd-long", "exsvd-static-pe", "exsvd", "exsvd-cyclic-pe")}
    torch.testing.assert_close(outputs["svd-long"], stock_long)  # extrapolated sinusoid
    torch.testing.assert_close(outputs["exsvd-static-pe"], stock_long)  # identity conv at init
    assert (outputs["exsvd"] - stock_long).abs().max() > 1e-4  # bounced positions
    assert (outputs["exsvd-cyclic-pe"] - outputs["exsvd"]).abs().max() > 1e-4


def test_trainable_parameters_per_arm(stock):
    counts = {arm: set_trainable(get_variant(arm).build(stock, **ARM_OPTIONS), arm_tuned)
              for arm, arm_tuned in ((a, get_variant(a).post_tuned) for a in list_variants())}
    assert counts["svd"]["trainable"] == counts["svd-long"]["trainable"] == 0
    full = counts["exsvd"]
    transformers = get_variant("exsvd").build(stock, **ARM_OPTIONS).temporal_transformers()
    assert full["positional_tables"] == sum(40 * t.in_channels for t in transformers)  # [40, C]
    assert full["trainable"] == (full["positional_tables"] + full["position_mlps"]
                                 + full["identity_convs"] + full["temporal_blocks"])
    assert counts["exsvd-no-idconv"]["identity_convs"] == 0
    assert counts["exsvd-no-idconv"]["trainable"] == full["trainable"] - full["identity_convs"]
    for arm in ("exsvd-static-pe", "exsvd-cyclic-pe"):
        assert counts[arm]["positional_tables"] == 0
        assert counts[arm]["trainable"] == full["trainable"] - full["positional_tables"]
    model = get_variant("exsvd").build(stock, **ARM_OPTIONS)
    set_trainable(model, True)
    for name, param in model.named_parameters():
        temporal = any(k in name for k in (".temporal_transformer_blocks.", ".time_proj.",
                                           ".time_pos_embed.", ".exvideo_convs."))
        assert param.requires_grad == temporal, name


@pytest.mark.parametrize("arm", ["exsvd", "exsvd-cyclic-pe", "exsvd-no-idconv"])
def test_save_and_load_round_trip(stock, arm, tmp_path):
    model = get_variant(arm).build(stock, **ARM_OPTIONS).eval()
    torch.manual_seed(3)
    with torch.no_grad():  # move every new parameter off its init so the check is not trivial
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.01 * torch.randn_like(param))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ExSVDUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.exsvd_pe == get_variant(arm).pe
    saved, back = model.state_dict(), loaded.state_dict()
    assert saved.keys() == back.keys()
    assert all(torch.equal(saved[key], back[key]) for key in saved)  # bit for bit
    # outputs to float tolerance only: CPU kernels may pick another path for tensors that
    # safetensors memory-maps at a different alignment (seen with torch 2.14)
    torch.testing.assert_close(denoise(loaded, BASE + 5), denoise(model, BASE + 5),
                               atol=1e-5, rtol=1e-4)


def test_registry_errors_and_user_arms():
    with pytest.raises(UnknownNameError, match=r"did you mean 'exsvd-no-idconv'.*registered: svd"):
        get_variant("exsvd-noconv")
    arm = register_variant(Variant("test-triangle-pe", "cyclic triangle PE", pe="cyclic",
                                   cyclic_shape="triangle", identity_conv=True, post_tuned=True))
    assert get_variant("test-triangle-pe") is arm and "test-triangle-pe" in list_variants()
    with pytest.raises(ValueError, match="already registered"):
        register_variant(arm)
    with pytest.raises(ValueError, match="unknown pe"):
        Variant("bad", "x", pe="learned")
    with pytest.raises(ValueError, match="unknown cyclic_shape 'saw'"):  # when defined, not built
        Variant("bad", "x", pe="cyclic", cyclic_shape="saw")


def test_a_copied_or_pickled_arm_runs_its_own_identity_convs(stock):
    import copy
    import io

    model = get_variant("exsvd").build(stock, **ARM_OPTIONS).eval()
    before = denoise(model, BASE + 4)
    twin = copy.deepcopy(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        for other in (twin, loaded):
            for name, param in other.named_parameters():
                if ".exvideo_convs." in name:
                    param.add_(0.05)
            assert (denoise(other, BASE + 4) - before).abs().max() > 1e-3  # its convs, changed
    torch.testing.assert_close(denoise(model, BASE + 4), before, atol=0, rtol=0)  # not shared


def test_latents_too_small_for_the_identity_conv_are_a_one_line_error(stock):
    from metrics.errors import BenchError

    model = get_variant("exsvd").build(stock, **ARM_OPTIONS).eval()
    with pytest.raises(BenchError, match="1 frames of 8x8 latents: too small for the identity"):
        denoise(model, 1)


def test_reflect_padding_by_copies_is_torchs_reflect_padding():
    """The identity conv's padding on a GPU under deterministic algorithms (no atomic adds)."""
    from variants.modules import reflect_pad_by_copies

    video = torch.randn(2, 3, 4, 2, 5, requires_grad=True)  # 2 a side: the smallest it allows
    expected = torch.nn.functional.pad(video, (1,) * 6, mode="reflect")
    padded = reflect_pad_by_copies(video)
    assert torch.equal(padded, expected)
    upstream = torch.randn_like(expected)
    torch.testing.assert_close(torch.autograd.grad(padded, video, upstream)[0],
                               torch.autograd.grad(expected, video, upstream)[0])


def test_a_base_model_without_the_svd_layout_is_refused_up_front(stock):
    from diffusers import UNet2DConditionModel

    from metrics.errors import BenchError

    with pytest.raises(BenchError, match="is not an SVD UNet"):
        get_variant("exsvd").build(UNet2DConditionModel(
            block_out_channels=(32, 64), norm_num_groups=32, cross_attention_dim=32,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")), **ARM_OPTIONS)
    patched = get_variant("exsvd").build(stock, **ARM_OPTIONS)
    with pytest.raises(BenchError, match="stock SVD UNet layout"):
        get_variant("exsvd-cyclic-pe").build(patched, **ARM_OPTIONS)
