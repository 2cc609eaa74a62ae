// Models and data on object storage, run as a user would: an S3-protocol server (s3rver) on
// 127.0.0.1, a proxy in front of it that can hold an upload so the writer is killed mid-way, and an
// https server with a self-signed certificate for the ETag cache.
import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import S3rver from 's3rver';
import sharp from 'sharp';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { atelierBin, runAtelier, scratchDir, type RunResult } from '../helpers.js';
import { closeS3, putFile } from '../../src/lib/io/s3.js';

const BUCKET = 'atelier-test';
let dir: string;
let s3rver: S3rver;
let endpoint: string;
let client: S3Client;
let env: NodeJS.ProcessEnv;
let features: string;
let records: string;
let rows: string;

/** The AWS settings of a user with a local S3-compatible store, nothing from this machine's own AWS files. */
function s3Env(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...env, ...overrides };
}

beforeAll(async () => {
  dir = scratchDir('atelier-remote-');
  s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(dir, 's3'), configureBuckets: [{ name: BUCKET }] });
  const { port } = await s3rver.run();
  endpoint = `http://127.0.0.1:${port}`;
  env = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_MAX_ATTEMPTS: '1',
    ATELIER_CACHE_DIR: '',
    XDG_CACHE_HOME: join(dir, 'cache'),
  };
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  // Two separable classes in 3 dimensions: a model trains in a second.
  const vectors: string[] = [];
  const labelled: string[] = [];
  for (let i = 0; i < 40; i++) {
    const c = i % 2;
    vectors.push(JSON.stringify([c + Math.sin(i) * 0.3, 1 - c + Math.cos(i) * 0.3, 0.5]));
    labelled.push(JSON.stringify({ id: `r${i}`, label: c ? 'dress' : 'shoe' }));
  }
  rows = join(dir, 'rows.ndjson');
  writeFileSync(rows, vectors.join('\n') + '\n');
  records = join(dir, 'records.ndjson');
  writeFileSync(records, labelled.join('\n') + '\n');
  features = join(dir, 'f.npy');
  const made = await runAtelier(['npy', 'from-ndjson', rows, '-o', features]);
  assert.equal(made.code, 0, made.stderr);
  writeFileSync(join(dir, 'f.ids.ndjson'), labelled.map((_, i) => JSON.stringify({ id: `r${i}`, row: i })).join('\n') + '\n');
});

afterAll(async () => {
  client?.destroy();
  await s3rver?.close();
});

async function getBytes(key: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function listKeys(prefix: string): Promise<string[]> {
  const out = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

function errorLines(r: RunResult): string[] {
  return r.stderr.split('\n').filter((l) => l && !l.startsWith('atelier: backend'));
}

const train = (out: string, seed: number, extra: NodeJS.ProcessEnv = {}) =>
  runAtelier(['train-classifier', '-i', records, '-f', features, '-l', 'label', '--epochs', '3', '--seed', String(seed), '-o', out], { env: s3Env(extra) });

test('NDJSON and .npy inputs read from s3://, an output written to s3://, byte for byte the local result', async () => {
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'io/rows.ndjson', Body: readFileSync(rows) }));
  const r = await runAtelier(['npy', 'from-ndjson', `s3://${BUCKET}/io/rows.ndjson`, '-o', `s3://${BUCKET}/io/f.npy`], { env: s3Env() });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /uploaded s3:\/\/atelier-test\/io\/f\.npy/);
  assert.doesNotMatch(r.stderr, /\/runs\//, 'messages name the remote path, not the local stand-in');
  assert.deepEqual(await getBytes('io/f.npy'), readFileSync(features));
  const remote = await runAtelier(['npy', 'to-ndjson', `s3://${BUCKET}/io/f.npy`], { env: s3Env() });
  const local = await runAtelier(['npy', 'to-ndjson', features]);
  assert.equal(remote.code, 0, remote.stderr);
  assert.equal(remote.stdout, local.stdout);
});

test('a model trained to s3:// classifies from s3:// exactly as the same model on disk', async () => {
  const trained = await train(`s3://${BUCKET}/models/m`, 3);
  assert.equal(trained.code, 0, trained.stderr);
  assert.match(trained.stderr, /uploaded s3:\/\/atelier-test\/models\/m \(2 files, version /);
  const index = JSON.parse((await getBytes('models/m/atelier-directory.json')).toString()) as { generation: string; files: Array<{ path: string }> };
  assert.deepEqual(index.files.map((f) => f.path), ['model.json', 'weights.bin']);
  const localModel = join(dir, 'm.model');
  assert.equal((await train(localModel, 3)).code, 0);
  // The stored weights are the local run's, byte for byte (training is seeded).
  assert.deepEqual(await getBytes(`models/m/.v/${index.generation}/weights.bin`), readFileSync(join(localModel, 'weights.bin')));
  // The features' ids are found beside the .npy, as on disk.
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'io/f.ids.ndjson', Body: readFileSync(join(dir, 'f.ids.ndjson')) }));
  const fromS3 = await runAtelier(['classify', '-m', `s3://${BUCKET}/models/m`, '-f', `s3://${BUCKET}/io/f.npy`, '-o', `s3://${BUCKET}/out/classes.ndjson`], { env: s3Env() });
  assert.equal(fromS3.code, 0, fromS3.stderr);
  assert.match(fromS3.stderr, /fetched s3:\/\/atelier-test\/models\/m \(2 files/);
  const local = await runAtelier(['classify', '-m', localModel, '-f', features]);
  assert.equal(local.code, 0, local.stderr);
  assert.ok(local.stdout.split('\n').length > 40);
  assert.equal((await getBytes('out/classes.ndjson')).toString(), local.stdout);
  const again = await runAtelier(['classify', '-m', `s3://${BUCKET}/models/m`, '-f', `s3://${BUCKET}/io/f.npy`], { env: s3Env() });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout, local.stdout);
  assert.doesNotMatch(again.stderr, /fetched s3:\/\/atelier-test\/models\/m/, 'the second read uses the cached model (same ETag)');
});

test('a missing key, a missing bucket and wrong credentials are one-line usage errors (exit 2); an unreachable store exits 1', async () => {
  const missing = await runAtelier(['npy', 'info', `s3://${BUCKET}/io/nope.npy`], { env: s3Env() });
  assert.equal(missing.code, 2);
  assert.deepEqual(errorLines(missing), [`atelier npy: s3://${BUCKET}/io/nope.npy: no such key`]);
  const noModel = await runAtelier(['classify', '-m', `s3://${BUCKET}/models/nope`, '-f', features], { env: s3Env() });
  assert.equal(noModel.code, 2);
  assert.deepEqual(errorLines(noModel), [`atelier classify: s3://${BUCKET}/models/nope: no such key`]);
  const noBucket = await runAtelier(['npy', 'from-ndjson', rows, '-o', 's3://no-such-bucket/f.npy'], { env: s3Env() });
  assert.equal(noBucket.code, 2);
  assert.deepEqual(errorLines(noBucket), [`atelier npy: s3://no-such-bucket/f.npy: no such bucket 'no-such-bucket'`]);
  for (const args of [['npy', 'info', `s3://${BUCKET}/io/f.npy`], ['npy', 'from-ndjson', rows, '-o', `s3://${BUCKET}/io/g.npy`]]) {
    const wrong = await runAtelier(args, { env: s3Env({ AWS_ACCESS_KEY_ID: 'NOBODY' }) });
    assert.equal(wrong.code, 2, wrong.stderr);
    const lines = errorLines(wrong);
    assert.equal(lines.length, 1, wrong.stderr);
    assert.match(lines[0]!, /^atelier npy: s3:\/\/atelier-test\/io\/[fg]\.npy: credentials refused \(InvalidAccessKeyId\)/);
  }
  const down = await runAtelier(['npy', 'info', `s3://${BUCKET}/io/f.npy`], { env: s3Env({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }) });
  assert.equal(down.code, 1, down.stderr);
  assert.equal(errorLines(down).length, 1, down.stderr);
  assert.match(down.stderr, /object store unreachable or failing: .*ECONNREFUSED/);
});

test('image paths inside records may be s3:// URLs: the same embedding as the local files; a missing one is skipped', async () => {
  const local: string[] = [];
  const remote: string[] = [];
  for (const [i, colour] of [[255, 0, 0], [0, 128, 255], [40, 200, 40]].entries()) {
    const png = await sharp({ create: { width: 12, height: 8, channels: 3, background: { r: colour[0]!, g: colour[1]!, b: colour[2]! } } }).png().toBuffer();
    const path = join(dir, `img${i}.png`);
    writeFileSync(path, png);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `img/${i}.png`, Body: png }));
    local.push(JSON.stringify({ id: `p${i}`, image: path }));
    remote.push(JSON.stringify({ id: `p${i}`, image: `s3://${BUCKET}/img/${i}.png` }));
  }
  writeFileSync(join(dir, 'images-local.ndjson'), local.join('\n') + '\n');
  writeFileSync(join(dir, 'images-s3.ndjson'), [...remote, JSON.stringify({ id: 'gone', image: `s3://${BUCKET}/img/gone.png` })].join('\n') + '\n');
  const a = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', join(dir, 'images-local.ndjson'), '-o', join(dir, 'px-local.npy')]);
  assert.equal(a.code, 0, a.stderr);
  const b = await runAtelier(['embed', '-m', 'pixels', '--pixels-size', '4', '-i', join(dir, 'images-s3.ndjson'), '-o', join(dir, 'px-s3.npy')], { env: s3Env() });
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(readFileSync(join(dir, 'px-s3.npy')), readFileSync(join(dir, 'px-local.npy')));
  assert.match(b.stderr, /s3:\/\/atelier-test\/img\/gone\.png.*no such key/);
  const ids = readFileSync(join(dir, 'px-s3.ids.ndjson'), 'utf8');
  assert.match(ids, /"image":"s3:\/\/atelier-test\/img\/0\.png"/, 'records keep the URL');
});

test('a file above the part size is uploaded in parts, each checked, and read back whole', async () => {
  // A float32 .npy of 2.8M values (11 MB): three parts of 5 MiB.
  const count = 2_800_000;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${count},), }`;
  header = header.padEnd(64 * Math.ceil((10 + header.length + 1) / 64) - 10 - 1) + '\n';
  const prefix = Buffer.concat([Buffer.from([0x93]), Buffer.from('NUMPY'), Buffer.from([1, 0]), Buffer.from(new Uint16Array([header.length]).buffer), Buffer.from(header, 'latin1')]);
  const values = Float32Array.from({ length: count }, (_, i) => (i % 1000) / 1000);
  const path = join(dir, 'big.npy');
  writeFileSync(path, Buffer.concat([prefix, Buffer.from(values.buffer)]));
  const size = readFileSync(path).length;
  // In this process the SDK reads its settings from process.env, as it does in the CLI; a proxy counts the parts.
  const proxy = await holdingProxy(() => false);
  Object.assign(process.env, s3Env({ ATELIER_S3_PART_MB: '5', AWS_ENDPOINT_URL: proxy.url }));
  try {
    await putFile(process.env, { bucket: BUCKET, key: 'big/big.npy' }, path, size);
  } finally {
    await closeS3();
    process.env.AWS_ENDPOINT_URL = endpoint;
    proxy.server.close();
  }
  assert.equal(proxy.seen.filter((r) => r.startsWith('PUT ') && /partNumber=\d/.test(r)).length, 3, 'three parts of 5 MiB');
  assert.deepEqual(await getBytes('big/big.npy'), readFileSync(path));
  const remote = await runAtelier(['npy', 'info', `s3://${BUCKET}/big/big.npy`], { env: s3Env() });
  const local = await runAtelier(['npy', 'info', path]);
  assert.equal(remote.code, 0, remote.stderr);
  const strip = (text: string) => ({ ...(JSON.parse(text) as Record<string, unknown>), file: undefined });
  assert.deepEqual(strip(remote.stdout), strip(local.stdout));
});

/** A proxy to s3rver that holds (never answers) the first request `hold` picks, and says when it has one. */
async function holdingProxy(hold: (req: IncomingMessage) => boolean): Promise<{ url: string; held: Promise<void>; server: Server; seen: string[] }> {
  let heldOne: () => void;
  const held = new Promise<void>((resolve) => (heldOne = resolve));
  let holding = false;
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (!holding && hold(req)) {
      holding = true;
      heldOne();
      return;
    }
    const upstream = request(`${endpoint}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held, server, seen };
}

test('an upload killed with SIGKILL half-way leaves the previous model readable; the next upload completes and prunes', async () => {
  const key = 'kill/m';
  assert.equal((await train(`s3://${BUCKET}/${key}`, 1)).code, 0);
  const before = await runAtelier(['classify', '-m', `s3://${BUCKET}/${key}`, '-f', features], { env: s3Env() });
  assert.equal(before.code, 0, before.stderr);
  const firstIndex = (await getBytes(`${key}/atelier-directory.json`)).toString();

  // The new version's weights get through; its model.json upload is held, and the writer is killed there.
  const proxy = await holdingProxy((req) => req.method === 'PUT' && /\/\.v\/[^/]+\/model\.json/.test(req.url ?? ''));
  const child = spawn(process.execPath, [atelierBin, 'train-classifier', '-i', records, '-f', features, '-l', 'label', '--epochs', '3', '--seed', '2', '-o', `s3://${BUCKET}/${key}`], {
    env: { ...process.env, ATELIER_BACKEND: 'wasm', ...s3Env({ AWS_ENDPOINT_URL: proxy.url }) },
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await Promise.race([proxy.held, exited.then(() => assert.fail('the writer finished before its upload was held'))]);
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  proxy.server.closeAllConnections();
  proxy.server.close();

  const versions = new Set((await listKeys(`${key}/.v/`)).map((k) => k.split('/')[3]));
  assert.equal(versions.size, 2, 'the killed run had started its own version');
  assert.equal((await getBytes(`${key}/atelier-directory.json`)).toString(), firstIndex, 'the index still names the first version');
  // A reader with an empty cache gets the previous model, whole.
  const after = await runAtelier(['classify', '-m', `s3://${BUCKET}/${key}`, '-f', features], { env: s3Env({ XDG_CACHE_HOME: join(dir, 'cache-after-kill') }) });
  assert.equal(after.code, 0, after.stderr);
  assert.equal(after.stdout, before.stdout);

  // A complete rerun makes its version current and deletes the killed one's leftovers.
  assert.equal((await train(`s3://${BUCKET}/${key}`, 2)).code, 0);
  const rerun = await runAtelier(['classify', '-m', `s3://${BUCKET}/${key}`, '-f', features], { env: s3Env() });
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.notEqual(rerun.stdout, before.stdout, 'the new model is read');
  const left = new Set((await listKeys(`${key}/.v/`)).map((k) => k.split('/')[3]));
  assert.equal(left.size, 2, `the current and the previous version remain (${[...left].join(', ')})`);
});

test('https:// inputs are cached by ETag: the second read is a conditional request answered 304', async (t) => {
  const keyPath = join(dir, 'tls.key');
  const certPath = join(dir, 'tls.crt');
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  if (made.status !== 0 || !existsSync(certPath)) return t.skip('openssl cannot make a self-signed certificate here');
  let body = readFileSync(features);
  const seen: Array<{ ifNoneMatch?: string; status: number }> = [];
  const server = createHttpsServer({ key: readFileSync(keyPath), cert: readFileSync(certPath) }, (req, res) => {
    if (req.url !== '/data/f.npy') {
      seen.push({ status: 404 });
      res.writeHead(404).end();
      return;
    }
    const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
    const ifNoneMatch = req.headers['if-none-match'];
    const status = ifNoneMatch === etag ? 304 : 200;
    seen.push({ ifNoneMatch, status });
    if (status === 304) res.writeHead(304, { etag }).end();
    else res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.onTestFinished(() => { server.close(); });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/data/f.npy`;
  const httpsEnv = s3Env({ NODE_EXTRA_CA_CERTS: certPath });
  const local = await runAtelier(['npy', 'to-ndjson', features]);
  const first = await runAtelier(['npy', 'to-ndjson', url], { env: httpsEnv });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, local.stdout);
  const second = await runAtelier(['npy', 'to-ndjson', url], { env: httpsEnv });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, local.stdout);
  // Each read also asks for the ids beside the .npy (404 here).
  assert.deepEqual(seen.filter((s) => s.status !== 404).map((s) => s.status), [200, 304]);
  const served = seen.filter((s) => s.status !== 404);
  assert.ok(served[1]!.ifNoneMatch, 'the second request carried If-None-Match');
  // A changed file has a new ETag and is downloaded again.
  const other = join(dir, 'other.npy');
  writeFileSync(join(dir, 'other.ndjson'), '[1,2]\n[3,4]\n');
  assert.equal((await runAtelier(['npy', 'from-ndjson', join(dir, 'other.ndjson'), '-o', other])).code, 0);
  body = readFileSync(other);
  const third = await runAtelier(['npy', 'to-ndjson', url], { env: httpsEnv });
  assert.equal(third.stdout, '[1,2]\n[3,4]\n');
  assert.equal(seen.filter((s) => s.status !== 404)[2]!.status, 200);
  const gone = await runAtelier(['npy', 'info', url.replace('f.npy', 'gone.npy')], { env: httpsEnv });
  assert.equal(gone.code, 2);
  assert.deepEqual(errorLines(gone), [`atelier npy: ${url.replace('f.npy', 'gone.npy')}: no such file (HTTP 404)`]);
  const write = await runAtelier(['npy', 'from-ndjson', rows, '-o', url], { env: httpsEnv });
  assert.equal(write.code, 2);
  assert.match(write.stderr, /https:\/\/ is read-only here/);
});
