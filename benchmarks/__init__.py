"""Performance targets, measured as ratios against a peer timed in the same run (`make bench`)."""
