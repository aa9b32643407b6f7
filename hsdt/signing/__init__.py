"""Signing: signer backends, plan and certificate policy, PAdES, verification."""

from hsdt.signing import _speedups

_speedups.install()
