"""fid-mnist: the Fréchet distance between the penultimate-layer features of a small, shipped MNIST
classifier on model samples and on the MNIST test images (Heusel et al. 2017's FID, with this
classifier instead of Inception: its numbers are NOT comparable with Inception FIDs from papers)."""
