"""A small RTSP server for tests, built on GStreamer's gst-rtsp-server (ffmpeg cannot serve RTSP).

Run it with the SYSTEM python3 (Debian's python3-gi and gir1.2-gst-rtsp-server-1.0; see
scripts/debian-packages.txt), not the project venv:

    /usr/bin/python3 tests/support/rtsp_server.py --port 0 --path cam [--video FILE] [--codec h264|mjpeg]

It serves a moving test pattern (or the given video file, played once) on rtsp://127.0.0.1:<port>/<path>
and prints one line ``READY rtsp://127.0.0.1:<port>/<path>`` on stdout once it listens (``--port 0``
picks a free port). SIGTERM or SIGINT stop it.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def pipeline(args: argparse.Namespace) -> str:
    caps = f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1"
    if args.video:
        src = (f'filesrc location="{args.video}" ! decodebin ! videoconvert ! videoscale ! videorate ! {caps}')
    else:
        src = f"videotestsrc is-live=true pattern={args.pattern} ! {caps} ! videoconvert"
    if args.codec == "mjpeg":
        enc = "jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26"
    else:
        enc = (f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} bframes=0 ! "
               "video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1")
    return f"( {src} ! {enc} )"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    ap.add_argument("--path", default="test", help="mount path, without the leading slash")
    ap.add_argument("--video", help="a video file to serve instead of the test pattern")
    ap.add_argument("--codec", choices=["h264", "mjpeg"], default="h264")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball, smpte, ...)")
    args = ap.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(args))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/" + args.path.lstrip("/"), factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}/{args.path.lstrip('/')}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
