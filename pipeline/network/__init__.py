"""What a trained run is: the network (``model``: ``EmotionCNN``, ``ModelConfig``,
ensembles) and the recipe it was trained with (``recipe``: ``TrainConfig``). Training
builds runs from these and inference rebuilds them, so neither imports the other.
Imports ``pipeline.core`` only; ``model`` needs torch."""
