"""diemcau probes package."""

__all__: list[str] = []
