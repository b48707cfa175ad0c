"""greenlens.Capture: reads a camera, stream, video file, image folder or synthetic scene into the frame ring."""

import os

# OpenCV's and FFmpeg's own stderr chatter would bury the component's one clear error line; both can be
# turned back on by setting these variables in the environment.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
