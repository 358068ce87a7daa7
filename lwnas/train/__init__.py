"""How a network learns: training settings, data sets and their splits, augmentation, the training loop,
checkpoints and run folders."""
