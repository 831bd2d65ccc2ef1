#!/usr/bin/env node
// Streamed chat completions, one at a time on one keep-alive connection (raw TCP, no client
// library in the way): the time from writing the request to the first `data:` byte of the body,
// and the gaps between the arrivals of consecutive SSE events.
//   node bench/ttft.mjs --url http://127.0.0.1:P/v1/chat/completions --key K [--model M]
//                       [--requests N] [--warmup N] [--expect-gap-ms MS]
// Prints one line: ttft_p50_ms ttft_p90_ms gap_p50_ms paced_fraction events_p50
//   paced_fraction: share of event gaps >= half of --expect-gap-ms ("-" without it); a relay that
//   holds events back and sends them together shows gaps near 0 and a small fraction.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string' },
    model: { type: 'string', default: 'gpt-4o-mini' },
    content: { type: 'string', default: 'Summarize the benefits of connection pooling in a few short sentences please' },
    requests: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '5' },
    'expect-gap-ms': { type: 'string' },
  },
});
if (!opts.url || !opts.key) {
  console.error('usage: ttft.mjs --url URL --key KEY [--model M] [--requests N] [--warmup N] [--expect-gap-ms MS]');
  process.exit(2);
}
const url = new URL(opts.url);
if (url.protocol !== 'http:') throw new Error('plain http only (loopback)');
const body = JSON.stringify({ model: opts.model, stream: true, messages: [{ role: 'user', content: opts.content }] });
const request = Buffer.from(
  `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${opts.key}\r\n`
  + `Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
);

// One HTTP/1.1 connection; reconnects when the server closed the previous one.
class Connection {
  constructor() { this.socket = null; }

  open() {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: url.hostname, port: Number(url.port || 80) });
      socket.setNoDelay(true);
      socket.once('connect', () => { socket.off('error', reject); resolve(socket); });
      socket.once('error', reject);
    });
  }

  // Resolves with {status, ttft, events: [arrival times], closed} once the response is complete.
  async exchange() {
    if (!this.socket || this.socket.destroyed) this.socket = await this.open();
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let state = 'head';
      let status = 0;
      let chunked = false;
      let remaining = 0;
      let closeAfter = false;
      let text = '';
      let scanned = 0;
      let ttft = null;
      const events = [];
      let start = 0;

      const finish = (closed) => {
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('error', onError);
        if (closed || closeAfter) { socket.destroy(); this.socket = null; }
        resolve({ status, ttft, events: events.map((t) => t - start), body: text });
      };
      const onBody = (bytes, now) => {
        text += bytes.toString('latin1');
        if (ttft === null && text.includes('data:')) ttft = now - start;
        for (let i = text.indexOf('\n\n', scanned); i >= 0; i = text.indexOf('\n\n', scanned)) {
          events.push(now);
          scanned = i + 2;
        }
      };
      const parse = (now) => {
        for (;;) {
          if (state === 'head') {
            const end = buf.indexOf('\r\n\r\n');
            if (end < 0) return;
            const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
            status = Number(lines[0].split(' ')[1]);
            const headers = new Map(lines.slice(1).map((l) => {
              const c = l.indexOf(':');
              return [l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim().toLowerCase()];
            }));
            buf = buf.subarray(end + 4);
            chunked = (headers.get('transfer-encoding') ?? '').includes('chunked');
            closeAfter = (headers.get('connection') ?? '') === 'close';
            if (chunked) state = 'size';
            else if (headers.has('content-length')) { remaining = Number(headers.get('content-length')); state = 'fixed'; }
            else { state = 'until-close'; closeAfter = true; }
          } else if (state === 'size') {
            const end = buf.indexOf('\r\n');
            if (end < 0) return;
            const size = parseInt(buf.subarray(0, end).toString('latin1').split(';')[0], 16);
            buf = buf.subarray(end + 2);
            if (size === 0) state = 'trailer';
            else { remaining = size; state = 'chunk'; }
          } else if (state === 'chunk' || state === 'fixed') {
            if (remaining > 0 && buf.length === 0) return;
            const take = Math.min(remaining, buf.length);
            if (take > 0) onBody(buf.subarray(0, take), now);
            buf = buf.subarray(take);
            remaining -= take;
            if (remaining > 0) return;
            if (state === 'fixed') return finish(false);
            state = 'chunk-end';
          } else if (state === 'chunk-end') {
            if (buf.length < 2) return;
            buf = buf.subarray(2);
            state = 'size';
          } else if (state === 'trailer') {
            const end = buf.indexOf('\r\n');
            if (end < 0) return;
            buf = buf.subarray(end + 2);
            if (end === 0) return finish(false);
          } else if (state === 'until-close') {
            if (buf.length > 0) onBody(buf, now);
            buf = Buffer.alloc(0);
            return;
          }
        }
      };
      const onData = (d) => {
        const now = performance.now();
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        parse(now);
      };
      const onEnd = () => {
        if (state === 'until-close') finish(true);
        else { socket.destroy(); this.socket = null; reject(new Error(`connection closed mid-response (${state})`)); }
      };
      const onError = (e) => { this.socket = null; reject(e); };
      socket.on('data', onData);
      socket.once('end', onEnd);
      socket.once('error', onError);
      start = performance.now();
      socket.write(request);
    });
  }
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(3) : '-');

const conn = new Connection();
const ttfts = [];
const gaps = [];
const eventCounts = [];
const total = Number(opts.warmup) + Number(opts.requests);
for (let i = 0; i < total; i++) {
  const r = await conn.exchange();
  if (r.status !== 200 || r.ttft === null) {
    console.error(`ttft: status ${r.status} from ${opts.url}: ${r.body.slice(0, 300)}`);
    process.exit(1);
  }
  if (i < Number(opts.warmup)) continue;
  ttfts.push(r.ttft);
  eventCounts.push(r.events.length);
  for (let k = 1; k < r.events.length; k++) gaps.push(r.events[k] - r.events[k - 1]);
}
conn.socket?.destroy();
ttfts.sort((a, b) => a - b);
gaps.sort((a, b) => a - b);
eventCounts.sort((a, b) => a - b);
const expect = opts['expect-gap-ms'] === undefined ? null : Number(opts['expect-gap-ms']);
const paced = expect === null || gaps.length === 0 ? '-' : (gaps.filter((g) => g >= expect / 2).length / gaps.length).toFixed(2);
console.log([fmt(quantile(ttfts, 0.5)), fmt(quantile(ttfts, 0.9)), fmt(quantile(gaps, 0.5)), paced,
  String(quantile(eventCounts, 0.5))].join(' '));
