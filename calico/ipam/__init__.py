"""IP address management: pools, blocks with host affinity, borrowing and handles."""
