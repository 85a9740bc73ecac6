// A stand-in media origin: a WebSocket echo server on loopback, run as its own process so the
// test can SIGKILL it like a crashed origin, or SIGSTOP it like a frozen one.
//
//   node echo-server.mjs NAME
//
// Prints one JSON line per event on stdout:
//   {"event":"listening","port":P}                    once, when ready
//   {"event":"open","client":"od","open":{"od":1}}    a connection opened (client = ?client=…)
//   {"event":"close","client":"od","code":1000,"open":{}}
//   {"event":"session","page":…,"conn":…,"session":…} a page re-published its session state
//                                                     (a text message {"type":"session",…})
// Every text message is answered with {"origin":NAME,"data":<the message text>}, so a page
// (even one behind a proxy) can tell which origin answered.
// Plain HTTP requests (the controller's active probe: `GET /`) get `200 ok` with an
// `Origin-Load` header (open connections / 100, at most 1). A stopped process answers
// nothing, though the kernel still completes TCP handshakes into the listen backlog.
// Exits when its stdin closes (the harness died), so it can never outlive the test.

import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const name = process.argv[2] ?? `echo-${process.pid}`;
const open = {};
let connections = 0;
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const http = createServer((req, res) => {
  const load = Math.min(1, connections / 100).toFixed(2);
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2', 'origin-load': load });
  res.end('ok');
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
http.on('listening', () => emit({ event: 'listening', port: http.address().port, pid: process.pid }));
wss.on('connection', (ws, req) => {
  const client = new URL(req.url ?? '/', 'http://x').searchParams.get('client') ?? 'unknown';
  open[client] = (open[client] ?? 0) + 1;
  connections += 1;
  emit({ event: 'open', client, open });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString();
    if (text.startsWith('{"type":"session"')) {
      try {
        const m = JSON.parse(text);
        emit({ event: 'session', client, page: m.page, conn: m.conn, session: m.session });
      } catch {
        /* not a session message after all */
      }
    }
    ws.send(`{"origin":${JSON.stringify(name)},"data":${JSON.stringify(text)}}`);
  });
  ws.on('error', () => {});
  ws.on('close', (code) => {
    open[client] -= 1;
    connections -= 1;
    if (open[client] === 0) delete open[client];
    emit({ event: 'close', client, code, open });
  });
});
const fail = (e) => {
  process.stderr.write(`echo-server ${name}: ${e.message}\n`);
  process.exit(1);
};
wss.on('error', fail);
http.on('error', fail);
http.listen(0, '127.0.0.1');
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
