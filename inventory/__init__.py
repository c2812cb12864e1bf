"""diemcau inventory package."""

__all__: list[str] = []
