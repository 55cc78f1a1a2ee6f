"""Example kdzoo plugin package."""
