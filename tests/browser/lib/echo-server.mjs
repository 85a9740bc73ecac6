// A stand-in media origin: a WebSocket echo server on loopback, run as its own process so the
// test can SIGKILL it like a crashed origin.
//
//   node echo-server.mjs NAME
//
// Prints one JSON line per event on stdout:
//   {"event":"listening","port":P}                    once, when ready
//   {"event":"open","client":"od","open":{"od":1}}    a connection opened (client = ?client=…)
//   {"event":"close","client":"od","code":1000,"open":{}}
// Every text message is answered with {"origin":NAME,"data":<the message text>}, so a page
// (even one behind a proxy) can tell which origin answered.
// Exits when its stdin closes (the harness died), so it can never outlive the test.

import { WebSocketServer } from 'ws';

const name = process.argv[2] ?? `echo-${process.pid}`;
const open = {};
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => emit({ event: 'listening', port: wss.address().port, pid: process.pid }));
wss.on('connection', (ws, req) => {
  const client = new URL(req.url ?? '/', 'http://x').searchParams.get('client') ?? 'unknown';
  open[client] = (open[client] ?? 0) + 1;
  emit({ event: 'open', client, open });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    ws.send(`{"origin":${JSON.stringify(name)},"data":${JSON.stringify(data.toString())}}`);
  });
  ws.on('error', () => {});
  ws.on('close', (code) => {
    open[client] -= 1;
    if (open[client] === 0) delete open[client];
    emit({ event: 'close', client, code, open });
  });
});
wss.on('error', (e) => {
  process.stderr.write(`echo-server ${name}: ${e.message}\n`);
  process.exit(1);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
