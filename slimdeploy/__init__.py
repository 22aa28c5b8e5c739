"""slimdeploy: measure whether pruning makes a model faster after backend optimization."""

__version__ = "0.1.0"
