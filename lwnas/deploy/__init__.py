"""How a network ships: export, evaluation and prediction with a trained checkpoint, latency and its predictor."""
