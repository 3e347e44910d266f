"""SVD's EDM objective on a tiny patched UNet: what a post-tuning step changes, and learning."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from variants import get_variant, set_trainable
from variants.objective import Batch, ObjectiveConfig, edm_loss, precondition
from variants.tiny import TINY_UNET

ARM_OPTIONS = {"base_length": 8, "table_size": 32, "bounce_low": 2}


def fixed_batch(frames: int = 10) -> Batch:
    generator = torch.Generator().manual_seed(0)
    return Batch(
        latents=torch.randn(2, frames, 4, 8, 8, generator=generator),
        condition_latent=torch.randn(2, 4, 8, 8, generator=generator),
        image_embeds=torch.randn(2, 1, 32, generator=generator),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]] * 2),
    )


def arm_unet(arm: str):
    torch.manual_seed(0)
    unet = get_variant(arm).build(UNetSpatioTemporalConditionModel(**TINY_UNET), **ARM_OPTIONS)
    set_trainable(unet, get_variant(arm).post_tuned)
    return unet


def test_preconditioning_matches_the_pipeline_scheduler():
    """c_in, c_noise and the x0 formula are what diffusers' Euler scheduler uses at inference."""
    from variants.tiny import tiny_pipeline

    scheduler = tiny_pipeline().scheduler
    scheduler.set_timesteps(5)
    sigma = scheduler.sigmas[1:2]
    c_in, c_skip, c_out, c_noise = precondition(sigma)
    sample = torch.randn(1, 4)
    torch.testing.assert_close(scheduler.scale_model_input(sample, scheduler.timesteps[1]),
                               sample * c_in)
    torch.testing.assert_close(scheduler.timesteps[1:2].float(), c_noise.float())
    output = torch.randn(1, 4)
    step = scheduler.step(output, scheduler.timesteps[1], sample)
    torch.testing.assert_close(step.pred_original_sample, c_skip * sample + c_out * output)


@pytest.mark.parametrize("arm", ["exsvd", "exsvd-no-idconv", "exsvd-static-pe"])
def test_one_step_changes_exactly_the_trainable_parameters(arm):
    unet = arm_unet(arm)
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-3)
    loss = edm_loss(unet, fixed_batch(), ObjectiveConfig(condition_dropout=0.0),
                    torch.Generator().manual_seed(1))
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    for name, param in unet.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        assert changed == param.requires_grad, name


def test_loss_decreases_over_a_short_run_on_a_fixed_batch():
    unet = arm_unet("exsvd")
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=3e-3)
    batch, config = fixed_batch(), ObjectiveConfig(condition_dropout=0.0)
    losses = []
    for _ in range(25):
        loss = edm_loss(unet, batch, config, torch.Generator().manual_seed(7))  # same noise
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


class ZeroUNet(torch.nn.Module):
    """Outputs zeros, so the loss is a closed form of the drawn sigmas and noise."""

    def forward(self, sample, timestep, image_embeds, added_time_ids):
        return SimpleNamespace(sample=torch.zeros(*sample.shape[:2], 4, *sample.shape[3:]))


@pytest.mark.parametrize("kind, weight", [
    ("exvideo", lambda sigma: math.sqrt(sigma**2 + 1) / sigma),  # DiffSynth's training_weight
    ("edm", lambda sigma: (sigma**2 + 1) / sigma**2),  # SVD's (EDM's lambda)
])
def test_loss_weighting_against_a_closed_form(kind, weight):
    batch, config = fixed_batch(), ObjectiveConfig(loss_weight=kind)
    loss = edm_loss(ZeroUNet(), batch, config, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)  # the draws edm_loss makes, in its order
    sigmas = (torch.randn(2, generator=generator) * config.p_std + config.p_mean).exp()
    noise = torch.randn(batch.latents.shape, generator=generator)
    expected = 0.0
    for clip, sigma in enumerate(sigmas.tolist()):
        denoised = (batch.latents[clip] + sigma * noise[clip]) / (sigma**2 + 1)  # c_skip * noisy
        expected += weight(sigma) * float(((denoised - batch.latents[clip]) ** 2).mean()) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_unknown_loss_weighting_is_refused():
    with pytest.raises(ValueError, match="loss_weight must be one of"):
        ObjectiveConfig(loss_weight="snr")
