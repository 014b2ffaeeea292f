"""A small bookshop: the application the demo test suite exercises."""

__all__: list[str] = []
