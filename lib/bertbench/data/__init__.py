"""Readers only: each returns :class:`~bertbench.data.examples.Examples`, the one in-memory form of labelled text."""
