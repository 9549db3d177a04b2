"""A man in the middle for tests: an h2c proxy (Python's h2) that forwards each
request to a real skyroute-node and flips one byte of the response body on the
way back, as an attacker on the ground segment's network could.

Used to show that the gateway never hands a tampered result to a client.
With lose_first=N it tampers with nothing and instead loses the first N
responses: the request reaches the node and runs there, and the gateway gets
RST_STREAM (INTERNAL_ERROR) in place of the result, as when a link drops
after the uplink; |lost| is set once they are lost, and later requests wait
for |go| to be set before they are forwarded (the test acts in between).
With flip_at=None it tampers with nothing and only watches: |most_partial|
is the most request bodies it saw under way at once (some DATA received,
not yet END_STREAM) on one connection, and |whole| the sizes of the bodies
in the order they arrived whole. read_delay=S makes it a slow reader (64 KiB
per S seconds, a small socket buffer, wide HTTP/2 windows: the sender is
held back by TCP alone).
refuse={PATH: STATUS} answers requests for PATH itself with STATUS and a JSON
error, as a node of an older version would (POST /v1/batch: 404); |paths|
lists the paths of the requests it saw, in order. rewrite=F replaces the
body of every answer it forwards with F(path, body) (which may return it
unchanged).
Single-threaded per connection; requests are forwarded one at a time.
"""

import socket
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


def _forward(upstream_port, headers, body, timeout=10):
    s = socket.create_connection(("127.0.0.1", upstream_port), timeout=timeout)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                             header_encoding="utf-8"))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, headers, end_stream=not body)
    if body:
        # respect the peer's window: send in chunks as it allows
        off = 0
        s.sendall(c.data_to_send())
        while off < len(body):
            window = c.local_flow_control_window(sid)
            while window == 0:
                for ev in c.receive_data(s.recv(65536)):
                    pass
                s.sendall(c.data_to_send())
                window = c.local_flow_control_window(sid)
            n = min(window, c.max_outbound_frame_size, len(body) - off)
            c.send_data(sid, body[off:off + n], end_stream=(off + n == len(body)))
            off += n
            s.sendall(c.data_to_send())
    s.sendall(c.data_to_send())
    status, rhdrs, rbody, done = None, [], bytearray(), False
    while not done:
        data = s.recv(65536)
        if not data:
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                rhdrs = [(k, v) for k, v in ev.headers]
                status = dict(rhdrs).get(":status")
            elif isinstance(ev, h2.events.DataReceived):
                rbody += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done = True
        s.sendall(c.data_to_send())
    s.close()
    return status, rhdrs, bytes(rbody)


class TamperProxy:
    def __init__(self, upstream_port, flip_at=-10, lose_first=0, read_delay=0.0, refuse=None,
                 rewrite=None):
        self.upstream_port = upstream_port
        self.refuse = refuse or {}
        self.rewrite = rewrite
        self.paths = []
        self.flip_at = flip_at  # index of the response body byte to flip
        self.lose_first = lose_first
        self.lost = threading.Event()
        self.go = threading.Event()
        if not lose_first:
            self.go.set()
        self.read_delay = read_delay
        self.whole = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if read_delay:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.tampered = 0
        self.most_partial = 0
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                 header_encoding="utf-8"))
        if self.read_delay:
            c.local_settings = h2.settings.Settings(client=False, initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16 << 20})
        c.initiate_connection()
        if self.read_delay:
            c.increment_flow_control_window(64 << 20)
        conn.sendall(c.data_to_send())
        reqs = {}
        while True:
            time.sleep(self.read_delay)
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    reqs[ev.stream_id] = [ev.headers, bytearray()]
                elif isinstance(ev, h2.events.DataReceived):
                    reqs[ev.stream_id][1] += ev.data
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    partial = sum(1 for h, b in reqs.values() if b)
                    self.most_partial = max(self.most_partial, partial)
                elif isinstance(ev, h2.events.StreamEnded):
                    headers, body = reqs.pop(ev.stream_id)
                    self.whole.append(len(body))
                    path = dict(headers).get(":path")
                    self.paths.append(path)
                    if path in self.refuse:
                        rb = b'{"error":"no such path","detail":null}\n'
                        c.send_headers(ev.stream_id, [(":status", str(self.refuse[path])),
                                                      ("content-type", "application/json")])
                        c.send_data(ev.stream_id, rb, end_stream=True)
                        continue
                    if self.lose_first == 0:
                        self.go.wait(30)
                    status, rh, rb = _forward(self.upstream_port, headers, bytes(body))
                    if self.lose_first > 0:
                        self.lose_first -= 1
                        c.reset_stream(ev.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                        if self.lose_first == 0:
                            self.lost.set()
                        continue
                    if self.rewrite:
                        rb = self.rewrite(path, rb)
                    elif rb and self.flip_at is not None:
                        b = bytearray(rb)
                        b[self.flip_at] ^= 0x01
                        rb = bytes(b)
                        self.tampered += 1
                    out = [(k, v) for k, v in rh if k not in ("content-length",)]
                    c.send_headers(ev.stream_id, out, end_stream=not rb)
                    for off in range(0, len(rb), c.max_outbound_frame_size):
                        chunk = rb[off:off + c.max_outbound_frame_size]
                        c.send_data(ev.stream_id, chunk, end_stream=off + len(chunk) == len(rb))
            conn.sendall(c.data_to_send())

    def close(self):
        self.stop = True
        self.sock.close()
