"""The zoo-ae plugin: registers the autoencoder families and their metrics (imports nothing heavy)."""

from zoo_core.plugins import hookimpl
from zoo_core.specs import FamilySpec, MetricSpec

_AE_FAMILIES = ("ae", "sparse-ae", "contractive-ae")
_TINY = {"hidden_widths": [32], "code_dim": 8, "image_size": 8, "conv_channels": [4]}

HINTON_2006 = """@article{hinton2006reducing,
  title = {Reducing the Dimensionality of Data with Neural Networks},
  author = {Hinton, Geoffrey E. and Salakhutdinov, Ruslan R.},
  journal = {Science},
  volume = {313},
  number = {5786},
  pages = {504--507},
  year = {2006}
}"""
NG_2011 = """@misc{ng2011sparse,
  title = {Sparse Autoencoder},
  author = {Ng, Andrew},
  howpublished = {CS294A Lecture Notes, Stanford University},
  year = {2011}
}"""
RIFAI_2011 = """@inproceedings{rifai2011contractive,
  title = {Contractive Auto-Encoders: Explicit Invariance During Feature Extraction},
  author = {Rifai, Salah and Vincent, Pascal and Muller, Xavier and Glorot, Xavier and Bengio, Yoshua},
  booktitle = {International Conference on Machine Learning (ICML)},
  pages = {833--840},
  year = {2011}
}"""


@hookimpl
def zoo_register_families(register):
    register(FamilySpec(
        "ae", "zoo_ae.models:AEConfig", "zoo_ae.models:AutoEncoder",
        "Deep autoencoder (Hinton & Salakhutdinov 2006); samples decode a Gaussian fitted to the training codes",
        dataset="mnist", tiny_config=_TINY, citation=HINTON_2006,
    ))
    register(FamilySpec(
        "sparse-ae", "zoo_ae.models:SparseAEConfig", "zoo_ae.models:SparseAutoEncoder",
        "Sparse autoencoder: KL(rho || rho_hat) or L1 penalty on the code activations",
        dataset="mnist", tiny_config={**_TINY, "hidden_widths": [], "code_dim": 96}, citation=NG_2011,
    ))
    register(FamilySpec(
        "contractive-ae", "zoo_ae.models:ContractiveAEConfig", "zoo_ae.models:ContractiveAutoEncoder",
        "Contractive autoencoder (Rifai et al. 2011): lambda * ||J_f(x)||_F^2 penalty on the encoder",
        dataset="mnist", tiny_config={**_TINY, "hidden_widths": [], "code_dim": 16}, citation=RIFAI_2011,
    ))


@hookimpl
def zoo_register_metrics(register):
    register(MetricSpec(
        "recon", "zoo_ae.metrics:reconstruction_error",
        "Average squared reconstruction error per test image (sum over pixels); writes recon.png", _AE_FAMILIES,
    ))
    register(MetricSpec(
        "pca-baseline", "zoo_ae.metrics:pca_baseline",
        "PCA with code_dim components fitted on the training images: its reconstruction error on the test images",
        _AE_FAMILIES,
    ))
    register(MetricSpec(
        "sparsity", "zoo_ae.metrics:sparsity",
        "Mean code activation and fraction of code units active per test image", _AE_FAMILIES,
    ))
    register(MetricSpec(
        "contractive", "zoo_ae.metrics:contractive",
        "Mean ||J_f(x)||_F^2 on test images, and reconstruction error under Gaussian input noise", _AE_FAMILIES,
    ))
