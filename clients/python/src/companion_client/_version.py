"""The client's version (read by the build, sent in `User-Agent`)."""

__version__ = "0.1.0"
