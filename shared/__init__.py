"""Code shared by the ingress, the workers and the handlers.

Nothing in this package imports ``ingress``, ``workers`` or ``handlers``.
"""
