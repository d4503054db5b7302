#!/usr/bin/python3
"""A real SPICE client that counts what its display channel draws.

  spice-frames.py --port PORT [--host HOST]

Connects with spice-gtk (SpiceClientGLib through GObject introspection,
package gir1.2-spiceclientglib-2.0; it needs the system's python3-gi, hence
/usr/bin/python3), lets the display channel decode every update into its
primary surface as any viewer does, and counts the `display-invalidate`
signals (one per drawn area) and the pixels they cover. No widget, no
window: what the client does is decode and account.

For each line read on stdin it prints one JSON line on stdout with the
running totals, so that the caller brackets its own measurement window
(and its CPU readings) with two snapshots:

  {"t": monotonic seconds, "width": W, "height": H, "invalidates": N,
   "area": pixels, "full": invalidates covering the whole primary,
   "bytes": bytes read on the display channel, "channels": [types]}

width and height are the primary surface's (0 before it exists). Exits
when stdin closes or the server goes away (status 1 if it never
connected).
"""
import json
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject, SpiceClientGLib  # noqa: E402

# Session.connect and Channel.connect are spice-gtk's (open the connection),
# hiding GObject's signal connect.
on = GObject.Object.connect


class Counter:
    def __init__(self, host, port):
        self.width = self.height = 0
        self.invalidates = self.area = self.full = 0
        self.display = None
        self.channels = []
        self.connected = False
        self.loop = GLib.MainLoop()
        self.session = SpiceClientGLib.Session(host=host, port=str(port))
        on(self.session, "channel-new", self.on_channel_new)
        on(self.session, "disconnected", lambda *_: self.loop.quit())
        if not self.session.connect():
            raise SystemExit("spice-frames: cannot connect")
        GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()),
                          GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP,
                          self.on_stdin)

    def on_channel_new(self, session, channel):
        self.channels.append(channel.get_property("channel-type"))
        on(channel, "channel-event", self.on_channel_event)
        if isinstance(channel, SpiceClientGLib.DisplayChannel):
            self.display = channel
            on(channel, "display-primary-create", self.on_primary)
            on(channel, "display-primary-destroy", self.on_primary_gone)
            on(channel, "display-invalidate", self.on_invalidate)
        # The session connects the main channel only; a viewer opens the
        # others the server announces, as this does.
        if not isinstance(channel, SpiceClientGLib.MainChannel):
            channel.connect()

    def on_channel_event(self, channel, event):
        if event == SpiceClientGLib.ChannelEvent.OPENED:
            self.connected = True
        elif event in (SpiceClientGLib.ChannelEvent.CLOSED,
                       SpiceClientGLib.ChannelEvent.ERROR_CONNECT,
                       SpiceClientGLib.ChannelEvent.ERROR_IO,
                       SpiceClientGLib.ChannelEvent.ERROR_LINK,
                       SpiceClientGLib.ChannelEvent.ERROR_AUTH,
                       SpiceClientGLib.ChannelEvent.ERROR_TLS):
            if channel.get_property("channel-type") == SpiceClientGLib.ChannelType.MAIN \
                    or channel is self.display:
                self.loop.quit()

    def on_primary(self, channel, fmt, width, height, stride, shmid, imgdata):
        self.width, self.height = width, height

    def on_primary_gone(self, channel):
        self.width = self.height = 0

    def on_invalidate(self, channel, x, y, w, h):
        self.invalidates += 1
        self.area += w * h
        if w * h >= self.width * self.height > 0:
            self.full += 1

    def snapshot(self):
        read = self.display.get_property("total-read-bytes") if self.display else 0
        return {"t": time.monotonic(), "width": self.width, "height": self.height,
                "invalidates": self.invalidates, "area": self.area, "full": self.full,
                "bytes": read, "channels": self.channels}

    def on_stdin(self, source, condition):
        line = sys.stdin.readline()
        if not line:
            self.loop.quit()
            return False
        print(json.dumps(self.snapshot()), flush=True)
        return True


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    c = Counter(a.host, a.port)
    c.loop.run()
    c.session.disconnect()
    return 0 if c.connected else 1


if __name__ == "__main__":
    sys.exit(main())
