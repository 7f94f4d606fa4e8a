"""lmc-claims: claims about linear mode connectivity as executable pytest claim tests."""

__version__ = "0.1.0"
