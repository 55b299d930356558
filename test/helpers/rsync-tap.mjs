/**
 * An rsync "remote shell" for tests that records the stream: `rsync -e 'node rsync-tap.mjs' …`
 * runs it as `rsync-tap.mjs HOST rsync --server …`. It runs that command on this machine and
 * relays both directions through Node streams: pipe() gives backpressure without ever blocking
 * the other direction, and the client's end of input ends the server's stdin (half-close). It
 * exits, with the server's status, once the server has exited and its output is passed on.
 *
 * Every chunk is appended to $TAP_LOG as it crosses, in crossing order:
 * 1 byte direction ('c' client to server, 't' server to client), u32le length, the bytes.
 * The command line goes to $TAP_LOG.cmd. Plain JavaScript so that node runs it without a loader.
 */
import { spawn } from 'node:child_process';
import { openSync, writeFileSync, writeSync } from 'node:fs';

const [, , , ...command] = process.argv;
const logPath = process.env.TAP_LOG;
if (!logPath || command.length === 0) {
  process.stderr.write('usage: TAP_LOG=FILE node rsync-tap.mjs HOST COMMAND [ARG…]\n');
  process.exit(2);
}
writeFileSync(`${logPath}.cmd`, command.join(' '));
const log = openSync(logPath, 'w');

/** Appends one chunk; synchronous, so the log keeps the order the event loop saw the chunks in. */
const record = (tag) => (data) => {
  const head = Buffer.alloc(5);
  head[0] = tag.charCodeAt(0);
  head.writeUInt32LE(data.length, 1);
  writeSync(log, Buffer.concat([head, data]));
};

const server = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
const fail = (what) => (err) => {
  process.stderr.write(`rsync-tap: ${what}: ${err.message}\n`);
  process.exit(1);
};
server.once('error', fail(`cannot run ${command[0]}`));
// EPIPE here means the server exited with input unread; its exit status says why.
server.stdin.on('error', (err) => { if (err.code !== 'EPIPE') fail('writing to the server')(err); });
process.stdout.on('error', fail('writing to the client'));

// The recorder is added before pipe(), so each chunk is logged before it is passed on.
process.stdin.on('data', record('c')).pipe(server.stdin);
server.stdout.on('data', record('t')).pipe(process.stdout);

server.once('close', (code, signal) => {
  // pipe() never ends process.stdout; end it here so everything written is flushed before exit.
  process.stdout.end(() => {
    if (signal) process.stderr.write(`rsync-tap: ${command[0]} killed by ${signal}\n`);
    process.exit(code ?? 1);
  });
});
