// The Node.js `ws` relay peer of bench/ink_relay.py: each connection joins the room named by its
// URL path, and each message is forwarded, unparsed, to the other side of its room.
// Run: node bench/node_relay/relay.js PORT
"use strict";
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2]);
const rooms = new Map();
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false, maxPayload: 1 << 20 });

server.on("connection", (ws, request) => {
  const path = request.url;
  let room = rooms.get(path);
  if (!room) {
    room = new Set();
    rooms.set(path, room);
  }
  room.add(ws);
  ws.on("message", (data, isBinary) => {
    for (const peer of room) {
      if (peer !== ws && peer.readyState === 1) peer.send(data, { binary: isBinary });
    }
  });
  ws.on("close", () => {
    room.delete(ws);
    if (room.size === 0) rooms.delete(path);
  });
  ws.on("error", () => {});
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
