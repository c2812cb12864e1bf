"""diemcau central package."""

__all__: list[str] = []
