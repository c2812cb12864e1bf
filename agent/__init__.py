"""diemcau agent package."""

__all__: list[str] = []
