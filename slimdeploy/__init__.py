"""slimdeploy: measure whether pruning makes a model faster after backend optimization.

The stages are importable for notebooks (``slimdeploy.api``)::

    from slimdeploy import prune_model, export_models, bench_models, make_report
"""

__version__ = "0.1.0"

API = ("adopt_model", "train_model", "prune_model", "export_models", "bench_models", "make_report")
__all__ = [*API, "__version__"]


def __getattr__(name: str):
    # Loaded on first use: `import slimdeploy` (and every CLI start) stays cheap.
    if name in API:
        from slimdeploy import api

        return getattr(api, name)
    raise AttributeError(f"module 'slimdeploy' has no attribute {name!r}")
