"""lmc-claims: claims about linear mode connectivity as executable pytest claim tests."""

from .version import __version__  # noqa: F401
