"""pythae's training loop, timed: shared by the benches that compare a zoo family with pythae
(bench_ae_pythae.py, bench_vae.py). Import it only in a venv that has pythae 0.1.2."""

from __future__ import annotations

import tempfile
import time


def sigmoid_decoder(net):
    """A pythae decoder around ``net`` (logits): the reconstruction is sigmoid(net(z))."""
    import torch
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Decoder()


def timed_training(model, images, *, batch_size: int, lr: float, optimizer_params=None) -> dict:
    """One epoch of pythae's BaseTrainer over ``images`` with Adam: the steps, the wall time of the whole
    ``train()`` call, and the loop's images/s between its first and last ``on_train_step_end``."""
    import torch
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class StepClock(TrainingCallback):
        def __init__(self):
            self.times = []

        def on_train_step_end(self, training_config, **kwargs):
            self.times.append(time.perf_counter())

    clock = StepClock()
    with tempfile.TemporaryDirectory() as out_dir:
        config = BaseTrainerConfig(output_dir=out_dir, num_epochs=1, per_device_train_batch_size=batch_size,
                                   learning_rate=lr, optimizer_cls="Adam", optimizer_params=optimizer_params,
                                   no_cuda=True)
        trainer = BaseTrainer(model, train_dataset=BaseDataset(images, torch.zeros(len(images))), training_config=config,
                              callbacks=[clock])
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    steps = len(clock.times)
    loop = (steps - 1) * batch_size / (clock.times[-1] - clock.times[0]) if steps > 1 else float("nan")
    return {"steps": steps, "wall_s": wall, "loop_images_per_s": loop}
