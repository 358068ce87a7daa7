"""Started twice by paddle.distributed.launch from test_train.py: trains a tiny network on an image count that
two processes cannot split evenly (131 at batch 13: 66 and 65 images, 6 and 5 batches without padding) and
saves this rank's trainable weights, before and after, to OUT/rank<R>.npz."""
import sys

import numpy as np
from conftest import tiny_spec

import lwnas
from lwnas.train import data
from lwnas.train.devices import distributed, seed_everything
from lwnas.train.loop import train
from lwnas.train.settings import TrainConfig

out, images = sys.argv[1], int(sys.argv[2])
config = TrainConfig(epochs=2, batch_size=13, amp=True, ema_decay=0.99, grad_clip=1.0, bn_recalibration=2)
seed_everything(config.seed)
model = lwnas.build(lwnas.ArchSpec.from_dict(tiny_spec([{"type": "inverted_residual", "out": 24, "expand": 48}])))
trainable = [p for p in model.parameters() if not p.stop_gradient]
initial = [p.numpy().copy() for p in trainable]
history = train(model, data.synthetic(images, 32, seed=0), data.synthetic(32, 32, seed=1), config)
rank, _ = distributed()
np.savez(f"{out}/rank{rank}.npz", epochs=len(history), **{f"trained{i}": p.numpy() for i, p in enumerate(trainable)},
         **{f"initial{i}": value for i, value in enumerate(initial)})
