"""diemcau diemcau package."""

__all__: list[str] = []
