"""Registers the ``nerf`` family, the ``blender`` and ``nerf-npz`` ray datasets and the ``psnr`` metric."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import DatasetSpec, FamilySpec, MetricSpec

#: A model small enough for the conformance suite to build, step and save in well under a second.
TINY_CONFIG = {
    "variant": "paper",
    "pos_freqs": 2,
    "dir_freqs": 1,
    "depth": 2,
    "hidden": 16,
    "skip_after": 1,
    "color_hidden": 8,
    "n_coarse": 4,
    "n_fine": 4,
    "width": 8,
    "height": 8,
    "focal": 11.0,
}


CITATION = """@inproceedings{mildenhall2020nerf,
  title = {{NeRF}: Representing Scenes as Neural Radiance Fields for View Synthesis},
  author = {Mildenhall, Ben and Srinivasan, Pratul P. and Tancik, Matthew and Barron, Jonathan T. and
            Ramamoorthi, Ravi and Ng, Ren},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year = {2020},
  eprint = {2003.08934},
  archivePrefix = {arXiv}
}
@article{mueller2022instant,
  title = {Instant Neural Graphics Primitives with a Multiresolution Hash Encoding},
  author = {M{\\"u}ller, Thomas and Evans, Alex and Schied, Christoph and Keller, Alexander},
  journal = {ACM Transactions on Graphics},
  volume = {41},
  number = {4},
  year = {2022},
  eprint = {2201.05989},
  archivePrefix = {arXiv}
}"""


@hookimpl
def zoo_register_families(register):
    register(
        FamilySpec(
            "nerf",
            "zoo_nerf.model:NeRFConfig",
            "zoo_nerf.model:NeRF",
            "Neural radiance fields: the paper's MLP (variant=paper) or a hash-grid fast variant (variant=fast)",
            dataset="blender",
            tiny_config=TINY_CONFIG,
            papers=("2003.08934", "2201.05989"),  # the paper's NeRF; the fast variant's hash grid (instant-ngp)
            citation=CITATION,
        )
    )


@hookimpl
def zoo_register_datasets(register):
    register(DatasetSpec("blender", "zoo_nerf.data:load_scene",
                         "Rays of a Blender synthetic scene (transforms_*.json + images), or any nerf npz"))
    register(DatasetSpec("nerf-npz", "zoo_nerf.data:load_npz",
                         "Rays from a tiny-NeRF npz (images, poses, focal) or an RGBA npz of the same layout"))


@hookimpl
def zoo_register_metrics(register):
    register(MetricSpec("psnr", "zoo_nerf.metrics:psnr",
                        "PSNR of renders of the held-out views (writes renders vs ground truth)", families=("nerf",)))

