"""A benchmark of the ingress, the worker and the whole path: ``python -m bench``."""
