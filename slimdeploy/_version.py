"""The package's version, at the bottom of the import graph (``slimdeploy/__init__`` reaches up to the API)."""

__version__ = "0.1.0"
