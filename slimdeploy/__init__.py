"""slimdeploy: measure whether pruning makes a model faster after backend optimization.

The stages are importable for notebooks (``slimdeploy.api``)::

    from slimdeploy import prune_model, export_models, bench_models, make_report
"""

from slimdeploy._version import __version__

API = ("adopt_model", "train_model", "prune_model", "export_models", "bench_models", "make_report")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    if name in API:
        # lazy: else `import slimdeploy.errors` would load every stage (and top the import graph)
        from slimdeploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'slimdeploy' has no attribute {name!r}")
