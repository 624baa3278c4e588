/**
 * The chaos suite's TCP proxy (test/helpers/fault-proxy.ts) against a local echo server:
 * each mode does to a connection what the chaos tests rely on.
 */
import net from 'node:net';
import { once } from 'node:events';
import { blackhole, cut, delay, FaultProxy, pass, reset, resetNext } from '../helpers/fault-proxy';

let echo: net.Server;
let received: Buffer[];
let proxy: FaultProxy;

beforeEach(async () => {
  received = [];
  echo = net.createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      received.push(d);
      s.write(d);
    });
    s.on('end', () => s.end());
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  proxy = await FaultProxy.start({ host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port }, 'echo');
});

afterEach(async () => {
  await proxy.close();
  echo.close();
});

/** A client through the proxy that records what it reads and how it ended. */
async function connect() {
  const socket = net.connect(proxy.port, proxy.host);
  const state = { data: Buffer.alloc(0), error: null as NodeJS.ErrnoException | null, closed: false };
  socket.on('data', (d: Buffer) => (state.data = Buffer.concat([state.data, d])));
  socket.on('error', (e: NodeJS.ErrnoException) => (state.error = e));
  socket.on('close', () => (state.closed = true));
  await once(socket, 'connect');
  return { socket, state };
}

const until = async (what: () => boolean, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('pass: bytes go both ways and are counted', async () => {
  const { socket, state } = await connect();
  socket.write('hello');
  await until(() => state.data.toString() === 'hello');
  expect(proxy.stats).toMatchObject({ accepted: 1, bytesUp: 5, bytesDown: 5, resets: 0 });
  socket.end();
  await until(() => state.closed);
});

test('delay: every chunk is held back, order survives a switch back to pass', async () => {
  const { socket, state } = await connect();
  proxy.set(delay(150));
  const started = Date.now();
  socket.write('a');
  await new Promise((r) => setTimeout(r, 20));
  proxy.set(pass);
  socket.write('b'); // must not overtake the held 'a'
  await until(() => state.data.length === 2);
  // 'a' held 150 ms on the way up; the echo of both comes back in order.
  expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  expect(state.data.toString()).toBe('ab');
  socket.destroy();
});

test('reset: open connections get ECONNRESET, new ones too, and pass heals', async () => {
  const open = await connect();
  open.socket.write('x');
  await until(() => open.state.data.length === 1);
  proxy.set(reset);
  await until(() => open.state.closed);
  expect(open.state.error?.code).toBe('ECONNRESET');

  const refused = net.connect(proxy.port, proxy.host);
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  expect(err.code).toBe('ECONNRESET');
  expect(proxy.stats.resets).toBe(2);

  proxy.set(pass);
  const healed = await connect();
  healed.socket.write('ok');
  await until(() => healed.state.data.toString() === 'ok');
  healed.socket.destroy();
});

test('blackhole: accepted, never forwarded, never answered; leaving it resets the caught connections', async () => {
  const before = await connect();
  proxy.set(blackhole);
  const caught = await connect(); // the connect itself succeeds: a silent partition, not a refusal
  before.socket.write('lost');
  caught.socket.write('lost too');
  await new Promise((r) => setTimeout(r, 300));
  expect(received).toHaveLength(0);
  expect(before.state.data.length + caught.state.data.length).toBe(0);
  expect(before.state.closed || caught.state.closed).toBe(false);

  proxy.set(pass);
  await until(() => before.state.closed && caught.state.closed);
  expect(caught.state.error?.code).toBe('ECONNRESET');
  const fresh = await connect();
  fresh.socket.write('back');
  await until(() => fresh.state.data.toString() === 'back');
  fresh.socket.destroy();
});

test('cut(n): exactly n more bytes reach the server, then the connection is reset and new ones refused', async () => {
  const { socket, state } = await connect();
  proxy.set(cut(10));
  socket.write('0123456');
  await until(() => Buffer.concat(received).length === 7);
  socket.write('789abcdef');
  await until(() => state.closed);
  expect(Buffer.concat(received).toString()).toBe('0123456789');
  expect(state.error?.code).toBe('ECONNRESET');
  expect(proxy.mode).toEqual(reset);
});

test('close: every connection is destroyed and the port is released', async () => {
  const a = await connect();
  proxy.set(blackhole);
  const b = await connect();
  const port = proxy.port;
  await proxy.close();
  await until(() => a.state.closed && b.state.closed);
  const again = net.connect(port, '127.0.0.1');
  const [err] = (await once(again, 'error')) as [NodeJS.ErrnoException];
  expect(err.code).toBe('ECONNREFUSED');
  proxy = await FaultProxy.start(proxy.target); // afterEach closes this one
});

test('reset(n): the open connection and the next n new ones are reset, then it passes', async () => {
  const open = await connect();
  proxy.set(resetNext(2));
  await until(() => open.state.closed);
  for (let i = 0; i < 2; i++) {
    const refused = net.connect(proxy.port, proxy.host);
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
  }
  expect(proxy.mode).toEqual(pass);
  const third = await connect();
  third.socket.write('through');
  await until(() => third.state.data.toString() === 'through');
  expect(proxy.stats.resets).toBe(3);
  third.socket.destroy();
});

test('reset(n, then): after the n refused connections the proxy goes on in the mode given (here a delay)', async () => {
  proxy.set(resetNext(1, delay(150)));
  const refused = net.connect(proxy.port, proxy.host);
  const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  expect(err.code).toBe('ECONNRESET');
  expect(proxy.mode).toEqual(delay(150));
  const next = await connect();
  const started = Date.now();
  next.socket.write('slow');
  await until(() => next.state.data.toString() === 'slow');
  expect(Date.now() - started).toBeGreaterThanOrEqual(290); // held 150 ms each way
  // With no new connection to refuse, `then` takes over at once.
  proxy.set(resetNext(0, delay(10)));
  expect(proxy.mode).toEqual(delay(10));
  next.socket.destroy();
});
