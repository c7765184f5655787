"""Metrics as pure numpy functions and accumulators, each module one benchmark family (video: VPQ / STQ / mVC)."""
