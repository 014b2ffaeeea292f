"""Helpers the test modules share: whole pytest runs, and what a database holds after them."""
