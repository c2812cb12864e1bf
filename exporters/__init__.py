"""diemcau exporters package."""

__all__: list[str] = []
