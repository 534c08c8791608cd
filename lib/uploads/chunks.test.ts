/** PATCH sizes: whole S3 parts, about a minute of the measured speed, within bounds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunkPacer, FIRST_CHUNK_BYTES, MAX_CHUNK_BYTES, MAX_STREAMED_CHUNK_BYTES, nextChunkSize, PART_BYTES } from './chunks';

const MiB = 1024 * 1024;

test('a PATCH carries about a minute at the speed of the last one, in whole 8 MiB parts', () => {
  // 2 MiB/s for 60 s = 120 MiB, which is 15 whole parts.
  assert.equal(nextChunkSize(48 * MiB, 24), 120 * MiB);
  // 1.5 MiB/s → 90 MiB → rounded down to 88 MiB (11 parts), never a short trailing part.
  const size = nextChunkSize(48 * MiB, 32);
  assert.equal(size, 88 * MiB);
  assert.equal(size % PART_BYTES, 0);
});

test('slow and fast links stay within one part and the ceiling', () => {
  assert.equal(nextChunkSize(8 * MiB, 600), PART_BYTES, 'a crawling link still sends a whole part');
  assert.equal(nextChunkSize(256 * MiB, 0.5), MAX_CHUNK_BYTES, 'a fast link stops at the ceiling');
});

test('without a measurement the first size is used', () => {
  assert.equal(nextChunkSize(0, 0), FIRST_CHUNK_BYTES);
  assert.equal(nextChunkSize(48 * MiB, 0), FIRST_CHUNK_BYTES);
});

test('the pacer measures each PATCH from the end of the one before', () => {
  let clock = 0;
  const pacer = chunkPacer(MAX_CHUNK_BYTES, () => clock);
  assert.equal(pacer.next(), FIRST_CHUNK_BYTES, 'nothing measured yet');
  clock = 24_000;
  pacer.completed(48 * MiB);
  assert.equal(pacer.next(), 120 * MiB);
  clock = 24_000 + 240_000; // the next 120 MiB took 4 minutes: the link slowed to 0.5 MiB/s
  pacer.completed(120 * MiB);
  assert.equal(pacer.next(), 24 * MiB);
});

test('a streaming sender may send larger PATCHes than one holding them in memory', () => {
  let clock = 0;
  const held = chunkPacer(MAX_CHUNK_BYTES, () => clock);
  const streamed = chunkPacer(MAX_STREAMED_CHUNK_BYTES, () => clock);
  clock = 1_000; // 48 MiB in a second: a minute's worth is 2880 MiB
  held.completed(48 * MiB);
  streamed.completed(48 * MiB);
  assert.equal(held.next(), MAX_CHUNK_BYTES);
  assert.equal(streamed.next(), MAX_STREAMED_CHUNK_BYTES);
});
