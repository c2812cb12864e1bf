"""Network-namespace test lab with a userspace link impairer (see lab.py and impair.py)."""

__all__: list[str] = []
