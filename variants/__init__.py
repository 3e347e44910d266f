"""ExSVD ablation arms on diffusers SVD (arriving with the variants issue; empty so far)."""
