"""Keeping secrets secret: the masker every printed string, error and JSON document passes through."""
