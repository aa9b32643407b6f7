"""Benchmarks of the record pipeline: ``python -m bench`` (``make bench``).

Prints one figure per line as ``name: number unit`` and context as lines starting with ``#``.
Self-contained: provisions its own test PKI in a temporary directory, serves the TSA/OCSP/CRL
from a separate process (so they do not compete with the measured code for the GIL), and
removes everything it made when it finishes.
"""
