"""Engagement read-back: post snapshots at fixed ages, followers per account and day, and
the daily roll-up that the premium choice and the reports read."""
