"""Code every GreenLens component ships with: the frame ring, the message contracts, topics, IPC helper."""
