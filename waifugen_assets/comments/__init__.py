"""Comment replies: fetch, classify, answer once in persona through the safety gate, hold for
review."""
