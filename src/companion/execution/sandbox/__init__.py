"""Code that runs inside the sandbox: standard library only, imported there as the package `sandbox`."""

__all__: list[str] = []
