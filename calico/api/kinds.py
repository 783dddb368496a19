"""Imports every module that defines resource kinds, so that they register in `KINDS`."""
