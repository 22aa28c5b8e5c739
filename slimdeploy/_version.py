"""The package's version, in a module of its own at the bottom of the import graph: the
records and reports that name the tool import it from here, not from ``slimdeploy`` itself,
whose ``__init__`` reaches up to the API."""

__version__ = "0.1.0"
