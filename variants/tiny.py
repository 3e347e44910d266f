"""Tiny configurations of the real SVD classes: a few M parameters, 64x64 pixels, CPU-friendly.

The same diffusers / transformers classes as Stable Video Diffusion, only smaller, so every code
path (patching, generation, post-tuning) runs on a laptop CPU and in the tests.
"""

from __future__ import annotations

import torch

TINY_UNET = dict(
    sample_size=8,
    in_channels=8,
    out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    block_out_channels=(32, 64),
    layers_per_block=1,
    cross_attention_dim=32,
    num_attention_heads=(2, 4),
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    transformer_layers_per_block=1,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
)
TINY_IMAGE_ENCODER = dict(  # the pipeline resizes condition images to 224 itself
    image_size=224,
    patch_size=32,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    projection_dim=32,
)


def tiny_pipeline(seed: int = 0):
    """A random-init ``StableVideoDiffusionPipeline`` built from the tiny configurations."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    return StableVideoDiffusionPipeline(
        vae=AutoencoderKLTemporalDecoder(**TINY_VAE).eval(),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_IMAGE_ENCODER)).eval(),
        unet=UNetSpatioTemporalConditionModel(**TINY_UNET).eval(),
        scheduler=scheduler,
        feature_extractor=CLIPImageProcessor(crop_size=224, size={"shortest_edge": 224}),
    )
