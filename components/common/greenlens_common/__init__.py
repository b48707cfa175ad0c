"""Code every GreenLens component ships with: the frame ring, the message contracts, topics, IPC helper,
configuration values and the entry point scaffolding."""
