"""A job function that always fails, for the dead-letter tests."""


def fail_always(reason: str) -> None:
    raise RuntimeError(f"always fails: {reason}")
