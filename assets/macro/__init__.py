"""Macro series (FRED): raw pulls."""
