"""NTPT models shipped with the package; the sources live in ``sources/``."""
