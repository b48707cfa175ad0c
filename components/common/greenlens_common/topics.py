"""Local (IPC pub/sub) topic names shared by the GreenLens components."""

FRAMES = "greenlens/frames"
"""greenlens.frame/1 descriptors, published by greenlens.Capture."""

RESULTS = "greenlens/results"
"""greenlens.result/1 messages, published by greenlens.Inference."""

EVENTS = "greenlens/events"
"""greenlens.event/1 messages (a lost camera, a recovery, an error), published by any component."""

CAMERAS = "greenlens/cameras"
"""greenlens.camera/1 messages (each camera's state: connected, reconnecting, missing, removed), published by
greenlens.Capture."""
