"""Export stage (``export.api.export_source``): Keras models to every registered target, each verified
against Keras."""
