"""Entry point of zoo-ddpm: registers the "ddpm" family and its metric (imports nothing heavy)."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import ConverterSpec, FamilySpec, MetricSpec


CITATION = """@inproceedings{ho2020denoising,
  title = {Denoising Diffusion Probabilistic Models},
  author = {Ho, Jonathan and Jain, Ajay and Abbeel, Pieter},
  booktitle = {Advances in Neural Information Processing Systems},
  volume = {33},
  pages = {6840--6851},
  year = {2020},
  eprint = {2006.11239},
  archivePrefix = {arXiv}
}"""


@hookimpl
def zoo_register_families(register):
    register(
        FamilySpec(
            name="ddpm",
            config="zoo_ddpm.model:DDPMConfig",
            model="zoo_ddpm.model:DDPM",
            description="Denoising diffusion (Ho et al. 2020): UNet eps_theta, L_simple, ancestral or strided sampling",
            dataset="cifar10",
            papers=("2006.11239",),
            citation=CITATION,
            preview_options={"num_inference_steps": 20},  # the card's sample grid: 20 strided steps, not T
            tiny_config={
                "image_size": 16, "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                "attention_resolutions": [8], "num_train_timesteps": 10, "norm_groups": 4,
            },
        )
    )


@hookimpl
def zoo_register_metrics(register):
    register(
        MetricSpec(
            "ddpm_loss",
            "zoo_ddpm.metrics:ddpm_loss",
            "Held-out L_simple (noise-prediction MSE) and a Monte Carlo estimate of the variational bound in bits/dim",
            families=("ddpm",),
        )
    )


@hookimpl
def zoo_register_converters(register):

    register(
        ConverterSpec(
            "diffusers",
            detect="zoo_ddpm.convert_diffusers:detect",
            convert="zoo_ddpm.convert_diffusers:convert",
            description="diffusers UNet2DModel + DDPM scheduler config (flat or pipeline layout, safetensors) -> ddpm",
            files=("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "model_index.json",
                   "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"),
        )
    )
