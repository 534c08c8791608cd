import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import {
  type Framing,
  type PacketFrame,
  bodyOffsetAt,
  chunkNonce,
  cipherLayout,
  computeLayout,
  definiteHeader,
  finalAssociatedData,
  frameHeaders,
  framePacket,
  framedPieces,
  framedStart,
  locate,
  packetFrame,
  parseLengthHeader,
  partialFrameCandidates,
  seipdBodyLength,
} from './format';

/** The framing rule of FORMAT.md written as the obvious loop: segments while more than 2^p remain. */
function naiveFramed(L: number, { partialThreshold, partialExponent }: Framing): (number | 'body')[] {
  const out: (number | 'body')[] = [];
  let rest = L;
  const seg = 2 ** partialExponent;
  const pushBody = (n: number) => {
    for (let i = 0; i < n; i++) out.push('body');
  };
  if (L > partialThreshold) {
    while (rest > seg) {
      out.push(0xe0 + partialExponent);
      pushBody(seg);
      rest -= seg;
    }
  }
  out.push(...definiteHeader(rest));
  pushBody(rest);
  return out;
}

/** framing(L) of FORMAT.md in BigInt arithmetic, so nothing can wrap at 2^32. */
function framingBig(L: bigint, t: bigint, p: bigint): bigint {
  const h = (r: bigint) => (r < 192n ? 1n : r < 8384n ? 2n : 5n);
  if (L <= t) return h(L);
  const k = (L - 1n) / 2n ** p;
  return k + h(L - k * 2n ** p);
}

function assemble(frame: PacketFrame, start: number, end: number): (number | 'body')[] {
  const out: (number | 'body')[] = [];
  let expectBody: number | undefined;
  for (const p of framedPieces(frame, start, end)) {
    if (p.kind === 'header') out.push(...p.bytes);
    else {
      // Body ranges must be contiguous in body coordinates.
      if (expectBody !== undefined) assert.equal(p.start, expectBody);
      expectBody = p.end;
      for (let b = p.start; b < p.end; b++) out.push('body');
    }
  }
  return out;
}

test('definite headers use the minimal encoding of RFC 9580', () => {
  assert.deepEqual([...definiteHeader(100)], [0x64]);
  assert.deepEqual([...definiteHeader(1723)], [0xc5, 0xfb]);
  assert.deepEqual([...definiteHeader(100000)], [0xff, 0x00, 0x01, 0x86, 0xa0]);
  assert.deepEqual([...definiteHeader(2 ** 32 - 1)], [0xff, 0xff, 0xff, 0xff, 0xff]);
  for (const [n, len] of [[0, 1], [191, 1], [192, 2], [8383, 2], [8384, 5]]) assert.equal(definiteHeader(n).length, len, `${n}`);
  assert.throws(() => definiteHeader(2 ** 32));
  for (const n of [0, 1, 191, 192, 193, 8383, 8384, 65535, 2 ** 31, 2 ** 32 - 1, randomInt(0, 2 ** 32 - 1)]) {
    const parsed = parseLengthHeader(definiteHeader(n), 0);
    assert.deepEqual(parsed, { kind: 'definite', length: n, headerLength: definiteHeader(n).length });
  }
  assert.deepEqual(parseLengthHeader(Uint8Array.of(0xfe), 0), { kind: 'partial', exponent: 30 });
  assert.equal(parseLengthHeader(Uint8Array.of(0xff, 0, 0), 0), undefined);
});

test('frames follow the framing rule, piece by piece and at every offset', () => {
  const framings: Framing[] = [
    { partialThreshold: 1000, partialExponent: 9 },
    { partialThreshold: 600, partialExponent: 10 },
    { partialThreshold: 2 ** 32 - 1, partialExponent: 30 },
  ];
  const lengths = [0, 1, 191, 192, 511, 512, 513, 600, 1000, 1001, 1024, 1025, 1536, 1537, 1539, 8383, 8384, 9000];
  for (const framing of framings) {
    for (const L of [...lengths, randomInt(1, 20000)]) {
      const frame = framePacket(L, framing);
      const naive = naiveFramed(L, framing);
      assert.equal(frame.framedLength, naive.length, `framed length of ${L}`);
      assert.deepEqual(assemble(frame, 0, frame.framedLength), naive, `pieces of ${L}`);
      for (let i = 0; i < 20; i++) {
        const a = randomInt(0, naive.length + 1);
        const b = randomInt(a, naive.length + 1);
        assert.deepEqual(assemble(frame, a, b), naive.slice(a, b), `pieces of ${L} in [${a}, ${b})`);
      }
      for (const h of frameHeaders(frame)) assert.deepEqual(naive.slice(h.offset, h.offset + h.bytes.length), [...h.bytes]);
      // Body offsets: count body octets before each framed offset.
      let body = 0;
      for (let f = 0; f <= naive.length; f++) {
        assert.equal(bodyOffsetAt(frame, f), body, `bodyOffsetAt(${f}) of ${L}`);
        if (naive[f] === 'body') {
          // framedStart(b) is at b's own octet unless headers precede it directly.
          let start = f;
          while (start > 0 && naive[start - 1] !== 'body') start--;
          assert.equal(framedStart(frame, body), body === 0 ? 0 : start, `framedStart(${body}) of ${L}`);
          body++;
        }
      }
      if (L > 0) assert.equal(framedStart(frame, L), frame.framedLength);
    }
  }
});

test('partial frame candidates include the true frame, and at most one other', () => {
  let ambiguous = 0;
  // Two frames share a length only when a near-full last segment needs a 5-octet header (p ≥ 14).
  for (const p of [9, 14]) {
    const seg = 2 ** p;
    const near = [2, 3].flatMap((k) => [k * seg - 2, k * seg - 1, k * seg, k * seg + 1, k * seg + 2, k * seg + 3]);
    for (let L = seg + 1; L < 4 * seg; L += randomInt(1, 97)) near.push(L);
    for (const L of near) {
      const frame = packetFrame(L, p);
      const candidates = partialFrameCandidates(frame.framedLength, p);
      assert.ok(candidates.some((c) => c.bodyLength === L), `L=${L}`);
      assert.ok(candidates.length <= 2);
      for (const c of candidates) assert.equal(c.framedLength, frame.framedLength);
      if (candidates.length === 2) ambiguous++;
    }
  }
  assert.ok(ambiguous > 0, 'the ambiguous case exists and is covered');
});

test('sizes follow FORMAT.md, beyond 2^32 too', () => {
  const cases = [
    { pkeskLength: 111, nameLength: 8, fileSize: 0, chunkOctet: 16 },
    { pkeskLength: 111, nameLength: 255, fileSize: 4 * 2 ** 20, chunkOctet: 16 },
    { pkeskLength: 99, nameLength: 3, fileSize: 2 ** 32 - 2 ** 25, chunkOctet: 16 },
    { pkeskLength: 99, nameLength: 3, fileSize: 2 ** 32 - 300, chunkOctet: 16 },
    { pkeskLength: 222, nameLength: 10, fileSize: 5_000_000_000, chunkOctet: 16 },
    { pkeskLength: 413, nameLength: 0, fileSize: 123_456_789_012, chunkOctet: 16 },
    { pkeskLength: 111, nameLength: 5, fileSize: 5000, chunkOctet: 0, framing: { partialThreshold: 1000, partialExponent: 9 } },
  ];
  for (const c of cases) {
    const layout = computeLayout(c);
    const t = BigInt(c.framing?.partialThreshold ?? 2 ** 32 - 1);
    const p = BigInt(c.framing?.partialExponent ?? 30);
    const cs = 2n ** BigInt(c.chunkOctet + 6);
    const litBody = 6n + BigInt(c.nameLength) + BigInt(c.fileSize);
    const P = 1n + litBody + framingBig(litBody, t, p);
    const N = P === 0n ? 1n : (P + cs - 1n) / cs;
    const A = P + 16n * N + 16n;
    const S = 36n + A;
    const total = BigInt(c.pkeskLength) + 1n + S + framingBig(S, t, p);
    assert.equal(BigInt(layout.literal.bodyLength), litBody);
    assert.equal(BigInt(layout.plaintextLength), P);
    assert.equal(BigInt(layout.chunkCount), N);
    assert.equal(BigInt(layout.aeadLength), A);
    assert.equal(BigInt(layout.seipd.bodyLength), S);
    assert.equal(BigInt(layout.total), total, JSON.stringify(c));
  }
  const fiveGB = computeLayout(cases[4]);
  assert.equal(fiveGB.literal.partials, 4, 'a 5 GB file uses partial lengths in the literal packet');
  assert.equal(fiveGB.seipd.partials, 4, 'and in the SEIPD packet');
  assert.equal(computeLayout(cases[2]).seipd.partials, 0, 'well under 4 GiB: one definite length');
  const nearly = computeLayout(cases[3]);
  assert.deepEqual([nearly.literal.partials, nearly.seipd.partials], [0, 4], 'the chunk tags push only the SEIPD body past 2^32 − 1');
  assert.throws(() => computeLayout({ pkeskLength: 99, nameLength: 256, fileSize: 1 }));
  assert.throws(() => computeLayout({ pkeskLength: 99, nameLength: 1, fileSize: 1, chunkOctet: 17 }));
  assert.throws(() => computeLayout({ pkeskLength: 99, nameLength: 1, fileSize: 1, framing: { partialThreshold: 10, partialExponent: 8 } }));
});

test('a P that fills its last chunk exactly gets no empty chunk after it', () => {
  for (const chunkOctet of [0, 3]) {
    const cs = 2 ** (chunkOctet + 6);
    let found = 0;
    for (let fileSize = 0; fileSize < 6 * cs; fileSize++) {
      const layout = computeLayout({ pkeskLength: 100, nameLength: 4, fileSize, chunkOctet });
      if (layout.plaintextLength % cs) continue;
      found++;
      assert.equal(layout.chunkCount, layout.plaintextLength / cs);
      assert.equal(layout.aeadLength, layout.plaintextLength + 16 * (layout.plaintextLength / cs) + 16);
    }
    assert.ok(found >= 4);
  }
});

test('nonces and the final associated data are big-endian 64-bit, past 2^32 too', () => {
  const be64 = (n: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return [...b];
  };
  const iv = Uint8Array.of(1, 2, 3, 4);
  for (const i of [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3]) assert.deepEqual([...chunkNonce(iv, i)], [1, 2, 3, 4, ...be64(i)]);
  for (const P of [8, 2 ** 32 + 7, 5_000_000_123]) {
    assert.deepEqual([...finalAssociatedData(16, P)], [0xd2, 2, 9, 3, 16, ...be64(P)]);
  }
});

test('the SEIPD body length determines P, and impossible lengths are refused', () => {
  for (const c of [0, 2, 16]) {
    const cs = 2 ** (c + 6);
    for (const P of [8, cs - 1, cs, cs + 1, 3 * cs, 3 * cs + 17, randomInt(8, 50 * cs)]) {
      const layout = cipherLayout(100, c, packetFrame(seipdBodyLength(P, c)));
      assert.equal(layout?.plaintextLength, P, `c=${c} P=${P}`);
    }
    // S − 52 = P + 16·N: a remainder of 1..16 octets after whole chunks would be a chunk with a partial tag only.
    for (const r of [1, 5, 16]) assert.equal(cipherLayout(100, c, packetFrame(52 + 2 * (cs + 16) + r)), undefined, `r=${r}`);
    assert.equal(cipherLayout(100, c, packetFrame(52 + 2 * (cs + 16) + 17))?.plaintextLength, 2 * cs + 1);
  }
});

test('locate maps every object offset to its chunk or region', () => {
  const framing = { partialThreshold: 700, partialExponent: 9 };
  for (const fileSize of [0, 100, 1500, 4000]) {
    const layout = computeLayout({ pkeskLength: 50, nameLength: 7, fileSize, chunkOctet: 1, framing });
    // Walk the object region by region, the slow way.
    const framed = naiveFramed(layout.seipd.bodyLength, framing);
    const expected: string[] = [];
    for (let i = 0; i < 50; i++) expected.push('pkesk');
    expected.push('packet-header');
    let b = 0;
    const cs = layout.chunkSize;
    for (const item of framed) {
      if (item !== 'body') {
        expected.push('packet-header');
        continue;
      }
      if (b < 36) expected.push('seipd-params');
      else if (b >= layout.seipd.bodyLength - 16) expected.push('final-tag');
      else {
        const i = Math.floor((b - 36) / (cs + 16));
        expected.push(`chunk ${i} ${b - 36 - i * (cs + 16)}`);
      }
      b++;
    }
    assert.equal(expected.length, layout.total);
    for (let o = 0; o < layout.total; o++) {
      const loc = locate(layout, o);
      assert.equal(loc.region === 'chunk' ? `chunk ${loc.chunk} ${loc.offset}` : loc.region, expected[o], `offset ${o}`);
    }
    assert.throws(() => locate(layout, layout.total));
  }
});
