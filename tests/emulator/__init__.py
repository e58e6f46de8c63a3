"""Local Close CRM API emulator for tap-close tests. See `CloseEmulator`."""

from .emulator import CloseEmulator
from .faults import FAULT_KINDS

__all__ = ["FAULT_KINDS", "CloseEmulator"]
