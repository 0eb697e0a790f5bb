"""Event handlers. Every module in this package is imported by the workers.

Add a handler by dropping a module here (or naming it in HANDLER_MODULES) that
registers functions with ``shared.registry.on``. A handler takes
``(event, plane)``: the parsed ``shared.events.Event`` and a plane-sdk
``PlaneClient`` authenticated as the installation's bot. A handler may run
again after a retry, so make its writes idempotent (see ``handlers.work_items``).
"""
