"""Pictures: device choice, image files, Stable Diffusion (diffusers), AnimeGANv2 styles and the pipeline joining them."""
