"""Training the network from the feature store: batches and augmentation draws
(``batches``), the optimiser (``optim``), one run's loop (``session``, with the
speaker-adversarial head of ``adversary``), checkpoints and resume (``checkpoints``),
devices and torchrun (``devices``, ``distributed``), and the stage that trains folds,
members and the final model (``train``). Never imported by ``pipeline.inference``."""
