"""The worker processes: RQ jobs for installs and deliveries.

``python -m workers`` starts the pool the Procfile's ``worker`` line runs.
"""
