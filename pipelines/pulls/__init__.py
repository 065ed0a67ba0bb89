"""Recorded pulls: raw API answers stored as immutable recordings with sha256, per source."""
