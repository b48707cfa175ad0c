"""greenlens.StreamPublisher: the annotated and raw MJPEG streams, a live page, results and events to IoT Core."""

import os

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
