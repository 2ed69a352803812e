"""NeRF for the zoo: ``NeRF`` (a Generator and a Renderer), ray datasets and the held-out PSNR metric."""
