"""Facial affect models behind one small interface (see ``interface``)."""
