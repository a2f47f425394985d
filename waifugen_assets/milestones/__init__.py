"""Follower milestones (Workflow 05): each character's phase from its followers, every
crossing recorded and announced once, never demoted on one bad read."""
