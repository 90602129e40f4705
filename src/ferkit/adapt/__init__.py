"""Adapt ferkit's expression model to a user's labelled photos (`ferkit adapt`)."""
