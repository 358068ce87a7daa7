"""Started twice by paddle.distributed.launch from test_supernet.py: trains the supernet of OUT/tiny.yaml for
one epoch with the sandwich rule, each process on its half of the images, and saves this rank's banks, before
and after, to OUT/rank<R>.npz."""
import sys
from pathlib import Path

import numpy as np

from lwnas.search.space_files import get_space
from lwnas.supernet import Supernet
from lwnas.supernet.train import Sandwich, sandwich_loss
from lwnas.train import data
from lwnas.train.devices import distributed, seed_everything
from lwnas.train.loop import train
from lwnas.train.settings import TrainConfig

out = Path(sys.argv[1])
config = TrainConfig(epochs=1, batch_size=8, bn_recalibration=1)
seed_everything(config.seed)
supernet = Supernet(get_space(out / "tiny.yaml"), 4)
initial = {name: p.numpy().copy() for name, p in supernet.named_parameters()}
train(supernet, data.synthetic(48, 32, classes=4, seed=0), data.synthetic(8, 32, classes=4, seed=1), config,
      loss_fn=sandwich_loss(supernet, Sandwich(random_subnets=1), config.seed, 0.0),
      evaluate_fn=lambda *loaders: (0.0, 0.0))
rank, _ = distributed()
np.savez(out / f"rank{rank}.npz", **{f"trained {name}": p.numpy() for name, p in supernet.named_parameters()},
         **{f"initial {name}": value for name, value in initial.items()})
