"""Sensors: they read the app database and emit run requests; no outside API calls."""
